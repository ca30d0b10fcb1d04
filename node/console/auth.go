package console

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go"
)

// sessionInfo answers /ui/api/session.
type sessionInfo struct {
	Node    string `json:"node"`
	Version string `json:"version"`
	// SignedIn: the browser has a session; User is its service ("" anonymous).
	SignedIn  bool   `json:"signed_in"`
	User      string `json:"user,omitempty"`
	Anonymous bool   `json:"anonymous"`
	// LoginRequired: the node refuses anonymous connections (it has
	// services): sign in with a service's name and password.
	LoginRequired bool `json:"login_required"`
}

func (c *Console) info(s *session) sessionInfo {
	i := sessionInfo{Node: c.cfg.Node, Version: c.cfg.Version}
	if s != nil {
		i.SignedIn, i.User, i.Anonymous = true, s.user, s.user == ""
	}
	return i
}

// handleSession says who the browser is signed in as. Without a session it
// tries to connect anonymously: that works only on a node without
// services, where no sign-in is asked.
func (c *Console) handleSession(w http.ResponseWriter, r *http.Request) {
	if s := c.current(r); s != nil {
		writeJSON(w, http.StatusOK, c.info(s))
		return
	}
	s, err := c.sessions.open("", "")
	switch {
	case isAuthError(err):
		i := c.info(nil)
		i.LoginRequired = true
		writeJSON(w, http.StatusOK, i)
	case err != nil:
		writeError(w, toAPIError(err))
	default:
		c.setCookie(w, r, s.id)
		writeJSON(w, http.StatusOK, c.info(s))
	}
}

type loginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// handleLogin signs in as a service, on a connection of its own.
func (c *Console) handleLogin(w http.ResponseWriter, r *http.Request) {
	if !checkPost(w, r) {
		return
	}
	var req loginRequest
	if e := decodeBody(r, &req); e != nil {
		writeError(w, e)
		return
	}
	if req.User == "" || req.Password == "" {
		writeError(w, badRequest("sign in with a service's name and password"))
		return
	}
	if ck, err := r.Cookie(cookieName); err == nil {
		c.sessions.end(ck.Value)
	}
	s, err := c.sessions.open(req.User, req.Password)
	if isAuthError(err) {
		c.log.Info("console sign-in refused", "user", req.User)
		writeError(w, &apiError{Code: "signed_out", Message: "sign-in refused: unknown service or wrong password", Status: http.StatusUnauthorized})
		return
	}
	if err != nil {
		writeError(w, toAPIError(err))
		return
	}
	c.log.Info("console sign-in", "user", req.User)
	c.setCookie(w, r, s.id)
	writeJSON(w, http.StatusOK, c.info(s))
}

func (c *Console) handleLogout(w http.ResponseWriter, r *http.Request) {
	if !checkPost(w, r) {
		return
	}
	if ck, err := r.Cookie(cookieName); err == nil {
		c.sessions.end(ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	writeJSON(w, http.StatusOK, c.info(nil))
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, id string) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: Prefix, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

// current is the request's live session, or nil.
func (c *Console) current(r *http.Request) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil || ck.Value == "" {
		return nil
	}
	return c.sessions.get(ck.Value)
}

// withSession runs h with the request's session, or answers signed_out.
func (c *Console) withSession(h func(w http.ResponseWriter, r *http.Request, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !checkPost(w, r) {
			return
		}
		s := c.current(r)
		if s == nil {
			writeError(w, &apiError{Code: "signed_out", Message: "no session: sign in", Status: http.StatusUnauthorized})
			return
		}
		h(w, r, s)
	}
}

// isAuthError: the server refused the connection's credentials (or their
// absence). A refused in-process connection ends with its pipe closed by
// the server (see anonProbe): that is a refusal too.
func isAuthError(err error) bool {
	return err != nil && (errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, io.ErrClosedPipe) || strings.Contains(strings.ToLower(err.Error()), "authorization violation"))
}

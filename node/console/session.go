package console

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node/client"
)

// cookieName holds the session id: random, HttpOnly, SameSite=Strict.
const cookieName = "datamesh_console"

// DeniedError is a request the server refused with a permissions
// violation: the session's identity may not publish to (or subscribe on)
// Subject.
type DeniedError struct{ Subject string }

func (e *DeniedError) Error() string { return "not allowed: " + e.Subject }

// violationRE finds the subject in nats.go's permissions violation,
// `nats: permissions violation: Permissions Violation for Publish to "dm.admin.mesh"`.
var violationRE = regexp.MustCompile(`(?i)violation for (publish|subscription) to "([^"]+)"`)

// session is one browser's sign-in: its own connection, with its identity.
type session struct {
	id   string
	user string // "" when anonymous
	nc   *nats.Conn
	api  *client.Client

	mu   sync.Mutex
	last time.Time
	// waiters are the requests under way, by subject: a violation that
	// names the subject fails them at once, where nats.go would let them
	// wait for their timeout.
	waiters map[string]map[chan string]struct{}
	// rates is the last sample of the API's request counters.
	sample *rateSample
}

// onError is the session connection's async error handler.
func (s *session) onError(_ *nats.Conn, _ *nats.Subscription, err error) {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return
	}
	m := violationRE.FindStringSubmatch(err.Error())
	if m == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for subject, set := range s.waiters {
		// A refused reply subscription fails every request: no reply can come.
		if subject != m[2] && !strings.EqualFold(m[1], "subscription") {
			continue
		}
		for ch := range set {
			select {
			case ch <- m[2]:
			default:
			}
		}
	}
}

// call runs fn, one API request on subject, and returns its error, or a
// *DeniedError as soon as the server refuses the subject.
func (s *session) call(subject string, fn func(c *client.Client) error) error {
	ch := make(chan string, 1)
	s.mu.Lock()
	if s.waiters[subject] == nil {
		s.waiters[subject] = map[chan string]struct{}{}
	}
	s.waiters[subject][ch] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters[subject], ch)
		if len(s.waiters[subject]) == 0 {
			delete(s.waiters, subject)
		}
		s.mu.Unlock()
	}()
	done := make(chan error, 1)
	// fn ends by itself at the client's timeout when the violation wins.
	go func() { done <- fn(s.api) }()
	select {
	case err := <-done:
		return err
	case denied := <-ch:
		return &DeniedError{Subject: denied}
	}
}

// sessions holds the open sessions by id.
type sessions struct {
	cfg Config
	log hclog.Logger

	mu     sync.Mutex
	byID   map[string]*session
	closed bool
	// anonRefusedUntil: an anonymous connection was refused; until then
	// the console asks for a sign-in without trying again.
	anonRefusedUntil time.Time
}

func newSessions(cfg Config, log hclog.Logger) *sessions {
	return &sessions{cfg: cfg, log: log, byID: map[string]*session{}}
}

// errClosed answers requests that come after Close.
var errClosed = errors.New("the console is closed")

// open signs in as user (anonymously when user is "") on a new connection
// and records the session.
func (ss *sessions) open(user, password string) (*session, error) {
	id, err := newID()
	if err != nil {
		return nil, err
	}
	s := &session{id: id, user: user, last: time.Now(), waiters: map[string]map[chan string]struct{}{}}
	name := "datamesh-console"
	opts := []nats.Option{nats.ErrorHandler(s.onError), nats.NoReconnect()}
	if user != "" {
		name += " " + user
		opts = append(opts, nats.UserInfo(user, password), nats.CustomInboxPrefix("_INBOX_"+user))
	}
	opts = append(opts, nats.Name(name))
	if s.nc, err = ss.connect(user == "", opts); err != nil {
		return nil, err
	}
	s.api = client.New(s.nc).WithTimeout(ss.cfg.Timeout)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		s.nc.Close()
		return nil, errClosed
	}
	ss.sweepLocked(time.Now())
	for len(ss.byID) >= ss.cfg.MaxSessions {
		ss.dropOldestLocked()
	}
	ss.byID[id] = s
	ss.log.Debug("session opened", "user", displayUser(user))
	return s, nil
}

// anonProbe bounds the wait for an anonymous connection, and
// anonRefusedFor how long a refusal is remembered. A refused in-process
// connection does not hear its refusal: nats.go writes CONNECT and PING
// as two writes on a synchronous pipe, the server answers the first with
// -ERR and neither reads until the server's write deadline (10 s) cuts
// the pipe. An accepted one is answered in well under a millisecond.
const (
	anonProbe      = 2 * time.Second
	anonRefusedFor = time.Minute
)

// errAnonymousRefused: anonymous clients are refused (the node has services).
var errAnonymousRefused = fmt.Errorf("%w: anonymous connections are refused", nats.ErrAuthorization)

// connect opens the session's connection. An anonymous one is given up
// after anonProbe, and its refusal remembered for anonRefusedFor.
func (ss *sessions) connect(anonymous bool, opts []nats.Option) (*nats.Conn, error) {
	if !anonymous {
		return ss.cfg.Connect(opts...)
	}
	ss.mu.Lock()
	refused := time.Now().Before(ss.anonRefusedUntil)
	ss.mu.Unlock()
	if refused {
		return nil, errAnonymousRefused
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		nc, err := ss.cfg.Connect(opts...)
		ch <- result{nc, err}
	}()
	t := time.NewTimer(anonProbe)
	defer t.Stop()
	select {
	case r := <-ch:
		if isAuthError(r.err) {
			ss.refuseAnonymous()
		}
		return r.nc, r.err
	case <-t.C:
		go func() { // a late success is closed: the answer was given
			if r := <-ch; r.nc != nil {
				r.nc.Close()
			}
		}()
		ss.refuseAnonymous()
		return nil, errAnonymousRefused
	}
}

func (ss *sessions) refuseAnonymous() {
	ss.mu.Lock()
	ss.anonRefusedUntil = time.Now().Add(anonRefusedFor)
	ss.mu.Unlock()
}

// get returns the live session id names, or nil.
func (ss *sessions) get(id string) *session {
	now := time.Now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[id]
	if s == nil {
		return nil
	}
	s.mu.Lock()
	expired := now.Sub(s.last) > ss.cfg.Idle
	s.last = now
	s.mu.Unlock()
	if expired || s.nc.IsClosed() {
		ss.dropLocked(s)
		return nil
	}
	return s
}

// end closes the session id names, if any.
func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s := ss.byID[id]; s != nil {
		ss.dropLocked(s)
	}
}

func (ss *sessions) closeAll() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
	for _, s := range ss.byID {
		ss.dropLocked(s)
	}
}

// sweepLocked ends the sessions idle for longer than cfg.Idle.
func (ss *sessions) sweepLocked(now time.Time) {
	for _, s := range ss.byID {
		s.mu.Lock()
		idle := now.Sub(s.last)
		s.mu.Unlock()
		if idle > ss.cfg.Idle || s.nc.IsClosed() {
			ss.dropLocked(s)
		}
	}
}

func (ss *sessions) dropOldestLocked() {
	var oldest *session
	var at time.Time
	for _, s := range ss.byID {
		s.mu.Lock()
		last := s.last
		s.mu.Unlock()
		if oldest == nil || last.Before(at) {
			oldest, at = s, last
		}
	}
	if oldest != nil {
		ss.dropLocked(oldest)
	}
}

func (ss *sessions) dropLocked(s *session) {
	delete(ss.byID, s.id)
	s.nc.Close()
	ss.log.Debug("session closed", "user", displayUser(s.user))
}

func displayUser(u string) string {
	if u == "" {
		return "(anonymous)"
	}
	return u
}

// newID is 32 random bytes, URL-safe.
func newID() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("session id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

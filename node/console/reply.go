package console

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node/protocol"
)

// maxBody bounds a request body the console reads.
const maxBody = 64 << 10

// csrfHeader must be on every POST: a page of another site cannot set it
// without a CORS preflight, which the console never grants.
const csrfHeader = "X-Datamesh-Console"

// apiError is the JSON form of every error the console's API answers.
type apiError struct {
	// Code is the API's error code, or not_allowed (a permissions
	// violation), signed_out, timeout, bad_request, not_found, error.
	Code    string `json:"code"`
	Message string `json:"message"`
	// Subject is the subject a not_allowed request was refused on.
	Subject string `json:"subject,omitempty"`
	Status  int    `json:"status"`
	// Detail is the API's own error reply, when there is one.
	Detail *protocol.Error `json:"detail,omitempty"`
}

// section is one part of a page: its data, or why it is missing.
type section struct {
	Data  any       `json:"data,omitempty"`
	Error *apiError `json:"error,omitempty"`
}

func sectionOf(data any, err error) section {
	if err != nil {
		return section{Error: toAPIError(err)}
	}
	return section{Data: data}
}

// toAPIError says what err means to the page.
func toAPIError(err error) *apiError {
	var denied *DeniedError
	var pe *protocol.Error
	switch {
	case errors.As(err, &denied):
		return &apiError{Code: "not_allowed", Message: denied.Error(), Subject: denied.Subject, Status: http.StatusForbidden}
	case errors.As(err, &pe):
		return &apiError{Code: pe.Code, Message: pe.Error(), Status: orStatus(pe.Status, http.StatusBadGateway), Detail: pe}
	case errors.Is(err, nats.ErrTimeout):
		return &apiError{Code: "timeout", Message: err.Error(), Status: http.StatusGatewayTimeout}
	case errors.Is(err, nats.ErrConnectionClosed):
		return &apiError{Code: "signed_out", Message: "the session's connection is closed: sign in again", Status: http.StatusUnauthorized}
	default:
		return &apiError{Code: "error", Message: err.Error(), Status: http.StatusBadGateway}
	}
}

func orStatus(s, def int) int {
	if s == 0 {
		return def
	}
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, map[string]*apiError{"error": e})
}

func writeResult(w http.ResponseWriter, v any, err error) {
	if err != nil {
		writeError(w, toAPIError(err))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func badRequest(msg string) *apiError {
	return &apiError{Code: "bad_request", Message: msg, Status: http.StatusBadRequest}
}

// decodeBody reads a JSON body of at most maxBody bytes into v.
func decodeBody(r *http.Request, v any) *apiError {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return badRequest("read body: " + err.Error())
	}
	if len(b) > maxBody {
		return badRequest("body too large")
	}
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return badRequest("body: " + err.Error())
	}
	return nil
}

// checkPost refuses a POST without the console's header.
func checkPost(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodPost && r.Header.Get(csrfHeader) != "1" {
		writeError(w, &apiError{Code: "forbidden", Message: "missing " + csrfHeader + " header", Status: http.StatusForbidden})
		return false
	}
	return true
}

package api

import (
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/micro"
)

// recordedRequest is a micro.Request that keeps the error it is answered
// with.
type recordedRequest struct {
	subject, reply string
	code, message  string
}

func (r *recordedRequest) Respond([]byte, ...micro.RespondOpt) error  { return nil }
func (r *recordedRequest) RespondJSON(any, ...micro.RespondOpt) error { return nil }
func (r *recordedRequest) Error(code, message string, _ []byte, _ ...micro.RespondOpt) error {
	r.code, r.message = code, message
	return nil
}
func (r *recordedRequest) Data() []byte           { return nil }
func (r *recordedRequest) Headers() micro.Headers { return nil }
func (r *recordedRequest) Subject() string        { return r.subject }
func (r *recordedRequest) Reply() string          { return r.reply }

func TestAppendOnAServerIsReadAsAnAppend(t *testing.T) {
	a := New(Config{Node: "shop", Server: "s1"}, Deps{}, hclog.NewNullLogger())
	if got := AppendOnPrefix("s1"); got != "dm.append-on.s1" {
		t.Fatalf("AppendOnPrefix: got %q", got)
	}
	for _, c := range []struct{ subject, want string }{
		// Read as dm.append.order: the error names that subject, as the
		// rejected record and the metrics do.
		{"dm.append-on.s1.order", `subject "dm.append.order": want dm.append.<aggregate>.<id>`},
		{"dm.append-on.s1.order.o-1.x", `subject "dm.append.order.o-1.x": want dm.append.<aggregate>.<id>`},
		// Another server's subject never reaches this server's endpoint;
		// if it did, it is refused rather than stored here.
		{"dm.append-on.s2.order.o-1", `subject "dm.append-on.s2.order.o-1": want dm.append-on.s1.<aggregate>.<id>`},
	} {
		req := &recordedRequest{subject: c.subject, reply: "_INBOX.x"}
		a.handleAppendOn(req)
		if req.code != "400" || !strings.Contains(req.message, c.want) {
			t.Errorf("%s: got %s %q, want 400 %q", c.subject, req.code, req.message, c.want)
		}
	}
}

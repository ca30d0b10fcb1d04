package embed

import (
	"fmt"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
)

// serverLogger routes nats-server's log lines into the node's hclog tree.
// Fatalf never exits the process: it logs and reports the error on fatal so
// that Start can return it as an ordinary error.
//
// Until the server is ready, its lines are held: a start that fails shows
// only the error Start returns (and any warnings), never the banner and
// "Server is ready" of a server that is about to shut down.
type serverLogger struct {
	log   hclog.Logger
	once  sync.Once
	fatal chan error

	mu      sync.Mutex
	holding bool
	held    []heldLine
}

type heldLine struct {
	level hclog.Level
	msg   string
}

var _ server.Logger = (*serverLogger)(nil)

func newServerLogger(log hclog.Logger) *serverLogger {
	return &serverLogger{log: log, fatal: make(chan error, 1)}
}

func (l *serverLogger) Noticef(format string, v ...any) { l.emit(hclog.Info, msg(format, v)) }

// Warnf logs a warning. The plaintext-password warning is lowered to debug:
// the only password user is the no-auth service user, whose empty password
// nats-server requires to stay plaintext.
func (l *serverLogger) Warnf(format string, v ...any) {
	m := msg(format, v)
	if strings.HasPrefix(m, "Plaintext passwords detected") {
		l.emit(hclog.Debug, m)
		return
	}
	l.emit(hclog.Warn, m)
}

// Errorf logs an error. A client's permissions violation or failed sign-in
// is the client's fault, not the node's: a warning, which names the client
// and the subject (an audit trail of what was denied). So is a route to a
// cluster server that is down.
func (l *serverLogger) Errorf(format string, v ...any) {
	m := msg(format, v)
	if strings.Contains(m, " Violation - ") || strings.Contains(m, "Authorization Error") || strings.Contains(m, "authentication error") ||
		// A server of the cluster that is down: expected while it is.
		strings.HasPrefix(m, "Error trying to connect to route") {
		l.emit(hclog.Warn, m)
		return
	}
	l.emit(hclog.Error, m)
}
func (l *serverLogger) Debugf(format string, v ...any) { l.emit(hclog.Debug, msg(format, v)) }
func (l *serverLogger) Tracef(format string, v ...any) { l.emit(hclog.Trace, msg(format, v)) }

// Fatalf reports the error to Start; while the server starts, Start
// returns it, so it is not logged as well.
func (l *serverLogger) Fatalf(format string, v ...any) {
	m := msg(format, v)
	l.mu.Lock()
	holding := l.holding
	l.mu.Unlock()
	if !holding {
		l.log.Error(m)
	}
	l.once.Do(func() { l.fatal <- fmt.Errorf("nats server: %s", m) })
}

// hold keeps lines back until release.
func (l *serverLogger) hold() {
	l.mu.Lock()
	l.holding = true
	l.mu.Unlock()
}

// release logs the held lines, all of them once the server is ready; after
// a failed start only warnings and errors.
func (l *serverLogger) release(ready bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.held {
		if ready || h.level >= hclog.Warn {
			l.log.Log(h.level, h.msg)
		}
	}
	l.held, l.holding = nil, false
}

func (l *serverLogger) emit(level hclog.Level, m string) {
	l.mu.Lock()
	if l.holding {
		if l.log.GetLevel() <= level {
			l.held = append(l.held, heldLine{level, m})
		}
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	l.log.Log(level, m)
}

func msg(format string, v []any) string {
	return strings.TrimSpace(fmt.Sprintf(format, v...))
}

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
type serverLogger struct {
	log   hclog.Logger
	once  sync.Once
	fatal chan error
}

var _ server.Logger = (*serverLogger)(nil)

func newServerLogger(log hclog.Logger) *serverLogger {
	return &serverLogger{log: log, fatal: make(chan error, 1)}
}

func (l *serverLogger) Noticef(format string, v ...any) { l.log.Info(msg(format, v)) }

// Warnf logs a warning. The plaintext-password warning is lowered to debug:
// the only password user is the no-auth service user, whose empty password
// nats-server requires to stay plaintext.
func (l *serverLogger) Warnf(format string, v ...any) {
	m := msg(format, v)
	if strings.HasPrefix(m, "Plaintext passwords detected") {
		l.log.Debug(m)
		return
	}
	l.log.Warn(m)
}
func (l *serverLogger) Errorf(format string, v ...any) { l.log.Error(msg(format, v)) }
func (l *serverLogger) Debugf(format string, v ...any) { l.log.Debug(msg(format, v)) }
func (l *serverLogger) Tracef(format string, v ...any) { l.log.Trace(msg(format, v)) }

func (l *serverLogger) Fatalf(format string, v ...any) {
	m := msg(format, v)
	l.log.Error(m)
	l.once.Do(func() { l.fatal <- fmt.Errorf("nats server: %s", m) })
}

func msg(format string, v []any) string {
	return strings.TrimSpace(fmt.Sprintf(format, v...))
}

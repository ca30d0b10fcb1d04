package embed

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
)

// Listener names one address a node listens on, for CheckListen.
type Listener struct {
	// Setting is the config key (listen, http, leaf_listen).
	Setting string
	// Flag is the command-line flag that sets it (--listen, …).
	Flag string
	// Addr is host:port; empty (disabled) and port 0 or -1 (any free
	// port) are not checked.
	Addr string
}

// ListenError is an address a node cannot listen on.
type ListenError struct {
	Setting, Flag, Addr string
	Err                 error
}

func (e *ListenError) Error() string {
	hint := ""
	if errors.Is(e.Err, syscall.EADDRINUSE) {
		hint = fmt.Sprintf(" (is another node running? %s sets the port)", e.Flag)
	} else if e.Flag != "" {
		hint = fmt.Sprintf(" (%s sets the address)", e.Flag)
	}
	return fmt.Sprintf("%s %s: %v%s", e.Setting, e.Addr, e.Err, hint)
}

func (e *ListenError) Unwrap() error { return e.Err }

// CheckListen binds each address and lets it go again, so that a port in
// use is one clear error before the server starts and logs anything.
// Another process can still take a port between the check and the
// server's own listen; the server then reports it as before.
func CheckListen(ls ...Listener) error {
	for _, l := range ls {
		if l.Addr == "" {
			continue
		}
		host, port, err := SplitHostPort(l.Addr)
		if err != nil || port <= 0 {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return &ListenError{Setting: l.Setting, Flag: l.Flag, Addr: l.Addr, Err: bareError(err)}
		}
		ln.Close()
	}
	return nil
}

// bareError is "address already in use" for "listen tcp …: bind: address
// already in use": the address is in the ListenError already.
func bareError(err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// IsLoopback reports whether host (an IP or a name) is a loopback
// address: "localhost" and 127.0.0.0/8 and ::1. Every interface
// ("", 0.0.0.0, ::) is not.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

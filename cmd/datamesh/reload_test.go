package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/datamesh/datamesh/node/client"
)

// TestSighupReloadsServices secures a running `datamesh node` process by
// editing its config file and sending SIGHUP; a broken file sent the same
// way is refused and changes nothing.
func TestSighupReloadsServices(t *testing.T) {
	p := newNodeProcess(t, "hup", "")
	cfg, err := os.ReadFile(p.config)
	if err != nil {
		t.Fatal(err)
	}
	secured := string(cfg) + "services:\n  - name: ops\n    password: ops-secret\n    admin: true\n"
	if err := os.WriteFile(p.config, []byte(secured), 0o644); err != nil {
		t.Fatal(err)
	}
	hup := func() {
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	hup()
	waitUntil(t, procDeadline, func() error {
		nc, err := nats.Connect("nats://"+p.listen, nats.NoReconnect())
		if err == nil {
			nc.Close()
			return errors.New("anonymous clients are still accepted")
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			return err
		}
		return nil
	})
	ops := func() error {
		nc, err := nats.Connect("nats://"+p.listen, nats.UserInfo("ops", "ops-secret"), nats.CustomInboxPrefix("_INBOX_ops"))
		if err != nil {
			return err
		}
		defer nc.Close()
		_, err = client.New(nc).Projections()
		return err
	}
	if err := ops(); err != nil {
		t.Fatalf("ops after SIGHUP: %v", err)
	}

	if err := os.WriteFile(p.config, []byte(secured+"services: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hup()
	waitUntil(t, procDeadline, func() error {
		if log := p.logTail(4000); !strings.Contains(log, "config reload refused; the old config stays") {
			return fmt.Errorf("no refusal in the log yet")
		}
		return nil
	})
	if err := ops(); err != nil {
		t.Fatalf("ops after a refused reload: %v", err)
	}
}

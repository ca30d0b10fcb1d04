package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/datamesh/datamesh/node"
)

// secureExample is deploy/examples/secure, from here.
const secureExample = "../../deploy/examples/secure/"

// TestSecureExample runs deploy/examples/secure/README.md as a user does,
// from a copy of the repository's layout in a temporary directory, so the
// page's relative paths work unchanged: the certificates made with the
// page's `keys tls` command, a node started from node.yaml (on a random
// port, with its own config source for reload), then each section's
// transcript in order, with what the page says to do between them: the
// `export` of DATAMESH_TLS_CA, and the edit of node.yaml before the reload.
//
// node.yaml's hashes are bcrypt cost 11, which the node checks at every
// sign-in; under the race detector that outlasts the client's connect
// handshake. The test checks each against the password the page signs in
// with, then runs the node with cost-4 hashes of the same passwords.
func TestSecureExample(t *testing.T) {
	readme, err := filepath.Abs(secureExample + "README.md")
	if err != nil {
		t.Fatal(err)
	}
	orders, err := filepath.Abs("../../deploy/examples/orders")
	if err != nil {
		t.Fatal(err)
	}
	yaml, err := os.ReadFile(secureExample + "node.yaml")
	if err != nil {
		t.Fatal(err)
	}
	hashes := cheapHashes(t, secureExample+"node.yaml", readmePasswords(t, readme))

	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "deploy/examples/secure"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(orders, filepath.Join(root, "deploy/examples/orders")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	const config = "deploy/examples/secure/node.yaml"
	if err := os.WriteFile(config, []byte(hashes.Replace(string(yaml))), 0o600); err != nil {
		t.Fatal(err)
	}

	// The certificates: the page's command, run as shown.
	lines, first := markdownSection(t, readme, "Certificates and the node")
	for _, c := range parseTranscripts(t, lines, first) {
		got, err := runCaptured(c.args)
		if err != nil || normaliseOutput(got) != normaliseOutput(strings.Join(c.want, "\n")) {
			t.Fatalf("README.md:%d: %s printed\n%s\nthe page shows\n%s", c.line, c.text, got, strings.Join(c.want, "\n"))
		}
	}

	load := func() (node.Config, error) {
		cfg := node.DefaultConfig()
		if err := node.LoadConfigFile(&cfg, config); err != nil {
			return cfg, err
		}
		cfg.Listen, cfg.HTTP, cfg.LeafListen = "127.0.0.1:-1", "", ""
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.SetConfigSource(load)
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if !strings.HasPrefix(n.ClientURL(), "tls://") {
		t.Fatalf("the node's client URL is %s, want tls://: node.yaml has no tls", n.ClientURL())
	}
	// The page uses the default --server, nats://127.0.0.1:4222: a nats://
	// URL that the node's INFO upgrades to TLS.
	url := "nats://" + strings.TrimPrefix(n.ClientURL(), "tls://")
	env := &readmeEnv{
		servers: map[string]string{"": url},
		ports:   strings.NewReplacer(url, "nats://127.0.0.1:4222"),
		files:   func(p string) string { return p },
		wait:    5 * time.Second,
	}

	for _, section := range []string{"TLS and signing in", "Walk-through", "What a service may not do", "Changing a grant without a restart"} {
		lines, first := markdownSection(t, readme, section)
		setExports(t, lines) // for this section and the ones after it
		if !t.Run(strings.ReplaceAll(section, " ", "_"), func(t *testing.T) {
			before, edit, after := splitAtYAML(lines)
			if edit == nil {
				runTranscript(t, env, section, lines, first)
				return
			}
			runTranscript(t, env, section, before, first)
			editService(t, config, hashes.Replace(strings.Join(edit, "\n")))
			runTranscript(t, env, section, after, first+len(before)+len(edit)+2)
		}) {
			return
		}
	}
}

// readmePasswords returns the --user/--password pairs the page's commands
// sign in with.
func readmePasswords(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pw := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "$ ") {
			continue
		}
		words, _, err := shellWords(l[2:])
		if err != nil {
			t.Fatal(err)
		}
		var user, password string
		for i := 0; i+1 < len(words); i++ {
			switch words[i] {
			case "--user":
				user = words[i+1]
			case "--password":
				password = words[i+1]
			}
		}
		if user != "" && password != "wrong" {
			pw[user] = password
		}
	}
	return pw
}

// cheapHashes checks that each service's hash in the config at path is of
// the password the page gives it, and returns a replacer of each hash by a
// cost-4 hash of the same password.
func cheapHashes(t *testing.T, path string, passwords map[string]string) *strings.Replacer {
	t.Helper()
	cfg := node.DefaultConfig()
	if err := node.LoadConfigFile(&cfg, path); err != nil {
		t.Fatal(err)
	}
	if got := len(cfg.Services); got != 3 {
		t.Fatalf("node.yaml has %d services, want 3", got)
	}
	var pairs []string
	for _, s := range cfg.Services {
		pw, ok := passwords[s.Name]
		if !ok {
			t.Fatalf("README.md never signs in as %s", s.Name)
		}
		if !strings.HasPrefix(s.Password, "$2a$11$") {
			t.Fatalf("node.yaml: %s's password is not a bcrypt hash of cost 11 (datamesh keys bcrypt)", s.Name)
		}
		if err := bcrypt.CompareHashAndPassword([]byte(s.Password), []byte(pw)); err != nil {
			t.Fatalf("node.yaml: %s's hash is not of %q, the password README.md signs in with: %v", s.Name, pw, err)
		}
		cheap, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, s.Password, string(cheap))
	}
	return strings.NewReplacer(pairs...)
}

var exportLine = regexp.MustCompile(`^export (DATAMESH_[A-Z_]+)=(\S+)$`)

// setExports sets the variables the section's `export` lines set.
func setExports(t *testing.T, lines []string) {
	t.Helper()
	for _, l := range lines {
		if m := exportLine.FindStringSubmatch(l); m != nil {
			t.Setenv(m[1], m[2])
		}
	}
}

// splitAtYAML splits lines at their ```yaml block: the lines before it,
// the block's content, the lines after it. edit is nil without a block.
func splitAtYAML(lines []string) (before, edit, after []string) {
	for i, l := range lines {
		if l != "```yaml" {
			continue
		}
		for j := i + 1; j < len(lines); j++ {
			if strings.HasPrefix(lines[j], "```") {
				return lines[:i], lines[i+1 : j], lines[j+1:]
			}
		}
	}
	return lines, nil, nil
}

// editService replaces, in the config at path, the entry of the service
// that entry (a "  - name: NAME" item of services) names.
func editService(t *testing.T, path, entry string) {
	t.Helper()
	head, _, _ := strings.Cut(entry, "\n")
	if !strings.HasPrefix(head, "  - name: ") {
		t.Fatalf("README.md: the yaml block starts with %q, want a services item (\"  - name: ...\")", head)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	start := -1
	for i, l := range lines {
		if l == head {
			start = i
		}
	}
	if start < 0 {
		t.Fatalf("node.yaml has no %q", head)
	}
	end := start + 1
	for end < len(lines) && strings.HasPrefix(lines[end], "    ") {
		end++
	}
	old := strings.Join(lines[start:end], "\n")
	if old == entry {
		t.Fatalf("README.md's yaml block is node.yaml's entry unchanged:\n%s", entry)
	}
	edited := strings.Join(append(append(append([]string{}, lines[:start]...), entry), lines[end:]...), "\n")
	if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
}

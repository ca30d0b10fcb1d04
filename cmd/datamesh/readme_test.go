package main

// The README's transcripts are tests. TestReadme (the sections
// "Walk-through" and "Upgrading a projection", one node) and
// TestReadmeMeshExample in mesh_example_test.go ("Linking nodes", three
// nodes) read README.md, run every command its transcripts show against
// real nodes, and compare what each command prints with what the README
// shows under it. A README that drifts from the output fails them.
//
// The convention (README.md says it too, under the walk-through):
//
//   - A transcript is a ```sh block with lines starting with "$ ". Blocks
//     without such a line (starting nodes, other tools) are not run.
//   - "$ go run ./cmd/datamesh ARGS" is a command; ARGS are split as a shell
//     does (single and double quotes). A "# ..." after the arguments is a
//     comment.
//   - The lines under a command, up to the next "$ " or "# " line, are what
//     it prints: stdout and stderr together as a terminal shows them, and
//     for a failing command the "error: ..." lines main prints. Blank lines
//     at the end are dropped.
//   - A command shown without output must say what it prints in a trailing
//     comment; it is run and must succeed, and its output is not compared.
//   - Other "# " lines are comments.
//
// What may differ between the README and the output (normalise), and
// nothing else:
//
//   - times with a fraction of 4 to 9 digits (RFC 3339 as the node writes
//     them, in nanoseconds): each becomes <time>;
//   - in tables, the cells of the columns TIME, LAG(s), EVENTS/s, ETA and
//     SIZE (times, durations, rates and file sizes), the column widths, and
//     spaces at the end of lines;
//   - a progress bar's frames: a line keeps what follows its last carriage
//     return, as on a terminal.
//
//   - in the mesh example, the test nodes' random ports: the README's
//     --server URLs (4222, 4223, 4224) name the test's nodes, its resource
//     files are copied with the test's leafnode ports, and the leafnode URLs
//     in the output are turned back into the README's (7422, 7423).
//
// The walk-through's node is named shop, as in the README; every command
// gets --server with the test node's URL. A read-only command (query, read,
// status, catalog, link dead-letters) is repeated until its output matches,
// for a few seconds at most (20 s in the mesh, where events arrive from
// other nodes on their own time); the others run once.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/nodetest"
)

var readmePath = "../../README.md"

// TestReadme runs the walk-through and the projection upgrade against one
// node, as the README has them follow each other.
func TestReadme(t *testing.T) {
	cfg := node.DefaultConfig()
	cfg.Name = "shop"
	cfg.DataDir = t.TempDir()
	cfg.Listen, cfg.HTTP, cfg.LeafListen = "127.0.0.1:-1", "", ""
	n, err := node.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	env := &readmeEnv{
		servers: map[string]string{"": n.ClientURL(), "nats://127.0.0.1:4222": n.ClientURL()},
		files:   func(p string) string { return "../../" + p },
		wait:    5 * time.Second,
	}
	// The upgrade continues from where the walk-through left the node.
	for _, section := range []string{"Walk-through", "Upgrading a projection"} {
		if !t.Run(strings.ReplaceAll(section, " ", "_"), func(t *testing.T) {
			lines, first := readmeSection(t, section)
			runTranscript(t, env, section, lines, first)
		}) {
			return
		}
	}
}

// readmeEnv is where a section's commands run.
type readmeEnv struct {
	servers map[string]string        // --server in the README ("" when none) → the test's URL
	ports   *strings.Replacer        // the test's URLs in the output → the README's (nil: none)
	files   func(path string) string // a -f path from the repository's root → a path from here
	wait    time.Duration            // how long a read-only command may take to show its output
}

type readmeCmd struct {
	line    int // in README.md
	text    string
	args    []string
	comment string
	want    []string // nil: not shown
}

// readmeSection returns the lines of README.md under "## name", up to the
// next "## " heading, and the line number of the first.
func readmeSection(t *testing.T, name string) ([]string, int) {
	t.Helper()
	return markdownSection(t, readmePath, name)
}

// markdownSection returns the lines of the Markdown file at path under
// "## name", up to the next "## " heading, and the line number of the
// first.
func markdownSection(t testing.TB, path, name string) ([]string, int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if l != "## "+name {
			continue
		}
		end := i + 1
		for end < len(lines) && !strings.HasPrefix(lines[end], "## ") {
			end++
		}
		return lines[i+1 : end], i + 2
	}
	t.Fatalf("%s has no section %q", path, name)
	return nil, 0
}

// parseTranscripts returns the commands of the transcripts in lines.
func parseTranscripts(t *testing.T, lines []string, first int) []readmeCmd {
	t.Helper()
	var (
		cmds  []readmeCmd
		block []int // line indexes of the current ```sh block
		in    bool
	)
	for i, l := range lines {
		switch {
		case !in && strings.HasPrefix(l, "```sh"):
			in, block = true, nil
		case in && strings.HasPrefix(l, "```"):
			in = false
			cmds = append(cmds, parseBlock(t, lines, block, first)...)
		case in:
			block = append(block, i)
		}
	}
	return cmds
}

func parseBlock(t *testing.T, lines []string, block []int, first int) []readmeCmd {
	t.Helper()
	transcript := false
	for _, i := range block {
		transcript = transcript || strings.HasPrefix(lines[i], "$ ")
	}
	if !transcript {
		return nil
	}
	var cmds []readmeCmd
	var cur *readmeCmd
	flush := func() {
		if cur == nil {
			return
		}
		for len(cur.want) > 0 && strings.TrimSpace(cur.want[len(cur.want)-1]) == "" {
			cur.want = cur.want[:len(cur.want)-1]
		}
		if len(cur.want) == 0 {
			cur.want = nil
			if cur.comment == "" {
				t.Errorf("README.md:%d: %s: show its output, or say what it prints in a trailing # comment", cur.line, cur.text)
			}
		}
		cmds = append(cmds, *cur)
		cur = nil
	}
	for _, i := range block {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "$ "):
			flush()
			words, comment, err := shellWords(strings.TrimPrefix(l, "$ "))
			if err != nil {
				t.Fatalf("README.md:%d: %v", first+i, err)
			}
			const prefix = "go run ./cmd/datamesh"
			if len(words) < 4 || strings.Join(words[:3], " ") != prefix {
				t.Fatalf("README.md:%d: %q: a transcript runs only %q commands", first+i, l, prefix)
			}
			cur = &readmeCmd{line: first + i, text: l, args: words[3:], comment: comment}
		case strings.HasPrefix(l, "# ") || l == "#":
			flush()
		case cur != nil:
			cur.want = append(cur.want, l)
		case strings.TrimSpace(l) != "":
			t.Fatalf("README.md:%d: %q is neither a command, nor a comment, nor under a command", first+i, l)
		}
	}
	flush()
	return cmds
}

// shellWords splits s as a shell does, for the quoting the README uses, and
// returns the comment after an unquoted #.
func shellWords(s string) (words []string, comment string, err error) {
	var (
		w     strings.Builder
		inW   bool
		quote rune
	)
	for i, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inW = r, true
		case r == '#' && !inW:
			return words, strings.TrimSpace(s[i+1:]), nil
		case unicode.IsSpace(r):
			if inW {
				words, inW = append(words, w.String()), false
				w.Reset()
			}
		default:
			w.WriteRune(r)
			inW = true
		}
	}
	if quote != 0 {
		return nil, "", fmt.Errorf("unclosed %c in %q", quote, s)
	}
	if inW {
		words = append(words, w.String())
	}
	return words, "", nil
}

// runTranscript runs the transcripts of a section in order.
func runTranscript(t *testing.T, env *readmeEnv, section string, lines []string, first int) {
	t.Helper()
	cmds := parseTranscripts(t, lines, first)
	if len(cmds) == 0 {
		t.Fatalf("README.md section %q shows no transcript (```sh lines starting with \"$ \")", section)
	}
	for _, c := range cmds {
		args := env.args(t, c)
		want := normaliseOutput(strings.Join(c.want, "\n"))
		var got, raw string
		check := func() error {
			var runErr error
			raw, runErr = runCaptured(args)
			if env.ports != nil {
				raw = env.ports.Replace(raw)
			}
			got = normaliseOutput(raw)
			if c.want == nil {
				return runErr
			}
			if got != want {
				return fmt.Errorf("differs")
			}
			return nil
		}
		start := time.Now()
		err := check()
		if err != nil && readOnly(c.args) {
			_ = nodetest.Poll(context.Background(), env.wait, 20*time.Millisecond, func() (bool, error) {
				err = check()
				return err == nil, nil
			})
		}
		if d := time.Since(start); d > time.Second {
			t.Logf("README.md:%d took %v", c.line, d.Round(time.Millisecond))
		}
		if err != nil && c.want == nil {
			t.Fatalf("README.md:%d: %s\nfailed:\n%s", c.line, c.text, raw)
		}
		if err != nil {
			t.Fatalf("README.md:%d: %s\nthe README shows:\n%s\nthe command printed:\n%s\nnormalised, the README:\n%s\nthe command:\n%s",
				c.line, c.text, strings.Join(c.want, "\n"), raw, want, got)
		}
	}
}

// args returns the command's arguments with its files and server mapped to
// the test's.
func (env *readmeEnv) args(t *testing.T, c readmeCmd) []string {
	t.Helper()
	var args []string
	server := ""
	for i := 0; i < len(c.args); i++ {
		a := c.args[i]
		switch {
		case (a == "-f" || a == "--file" || a == "--server") && i+1 < len(c.args):
			i++
			v := c.args[i]
			if a == "--server" {
				server = v
				continue
			}
			args = append(args, a, env.files(v))
		case strings.HasPrefix(a, "--server="):
			server = strings.TrimPrefix(a, "--server=")
		default:
			args = append(args, a)
		}
	}
	url, ok := env.servers[server]
	if !ok {
		t.Fatalf("README.md:%d: --server %s is none of the nodes the section starts", c.line, server)
	}
	return append(args, "--server", url)
}

// readOnly reports whether running args again changes nothing.
func readOnly(args []string) bool {
	switch args[0] {
	case "query", "read", "status", "catalog":
		return true
	case "link":
		return len(args) > 1 && args[1] == "dead-letters"
	}
	return false
}

// runCaptured runs the CLI with args and returns what a terminal would show:
// stdout and stderr together, then the error as main prints it.
func runCaptured(args []string) (string, error) {
	var w lockedBuffer
	err := run(context.Background(), args, strings.NewReader(""), &w, &w)
	if err != nil {
		printError(&w, err)
	}
	return w.String(), err
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

var (
	nanoTime = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{4,9}Z`)
	// A table header: two or more upper-case columns, two spaces apart.
	tableHeader = regexp.MustCompile(`^[A-Z][A-Z0-9 ()/s]*[A-Z)s]$`)
	// The columns whose cells differ from run to run.
	varyingColumns = map[string]bool{"TIME": true, "LAG(s)": true, "EVENTS/s": true, "ETA": true, "SIZE": true}
)

// normaliseOutput applies the rules at the top of this file.
func normaliseOutput(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if j := strings.LastIndexByte(l, '\r'); j >= 0 {
			l = l[j+1:]
		}
		lines[i] = strings.TrimRight(l, " ")
	}
	var out []string
	for i := 0; i < len(lines); i++ {
		starts, names := tableColumns(lines[i])
		if starts == nil {
			out = append(out, nanoTime.ReplaceAllString(lines[i], "<time>"))
			continue
		}
		out = append(out, strings.Join(names, " | "))
		// Rows run to a blank line or a note in parentheses.
		for i+1 < len(lines) && lines[i+1] != "" && !strings.HasPrefix(lines[i+1], "(") {
			i++
			row := []rune(lines[i])
			cells := make([]string, len(starts))
			for c, start := range starts {
				end := len(row)
				if c+1 < len(starts) && starts[c+1] < end {
					end = starts[c+1]
				}
				if start < end {
					cells[c] = nanoTime.ReplaceAllString(strings.TrimSpace(string(row[start:end])), "<time>")
				}
				if varyingColumns[names[c]] {
					cells[c] = "*"
				}
			}
			out = append(out, strings.Join(cells, " | "))
		}
	}
	return strings.Join(out, "\n")
}

// tableColumns returns where each column of a table header starts (in
// runes) and its name, or nil if l is not a header.
func tableColumns(l string) (starts []int, names []string) {
	if !tableHeader.MatchString(l) || !strings.Contains(l, "  ") {
		return nil, nil
	}
	r := []rune(l)
	for i := 0; i < len(r); {
		for i < len(r) && r[i] == ' ' {
			i++
		}
		start := i
		for i < len(r) && !(r[i] == ' ' && (i+1 == len(r) || r[i+1] == ' ')) {
			i++
		}
		starts = append(starts, start)
		names = append(names, string(r[start:i]))
	}
	return starts, names
}

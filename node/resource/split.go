package resource

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/datamesh/datamesh/schemas"
)

// SourceMarker starts the documents of one file in an apply request: the
// client writes "# datamesh-source: <file>" on the line after the "---"
// before each file it reads, so that an error names the file and counts
// lines from the file's start. It is a YAML comment: a body without it
// is read the same, its errors naming documents and lines of the body.
const SourceMarker = "# datamesh-source: "

// document is one YAML document of a request.
type document struct {
	// body is the document preceded by blank lines, so that the lines
	// YAML reports are those of its file (or of the request body).
	body   []byte
	source string // the file, "" if the body names none
	index  int    // 1-based, among the documents of source
	count  int    // documents of source
}

// locate puts the file and the document index in err.
func (d document) locate(err error) error {
	var de *schemas.DecodeError
	if errors.As(err, &de) {
		schemas.InFile(de, d.source)
		if d.count > 1 {
			de.Msg = fmt.Sprintf("document %d: %s", d.index, de.Msg)
		}
		return de
	}
	var where []string
	if d.source != "" {
		where = append(where, d.source)
	}
	if d.count > 1 {
		where = append(where, fmt.Sprintf("document %d", d.index))
	}
	if len(where) == 0 {
		return err
	}
	return fmt.Errorf("%s: %w", strings.Join(where, ", "), err)
}

// splitDocuments splits a YAML stream on "---" lines, as kubectl does, and
// drops documents that hold only blanks and comments.
func splitDocuments(body []byte) []document {
	var (
		docs     []document
		cur      bytes.Buffer
		source   string
		srcStart int // the line before the source's first
		curStart int // the line of cur's first, in the source
		counts   = map[string]int{}
	)
	flush := func() {
		if hasContent(cur.Bytes()) {
			counts[source]++
			b := append(bytes.Repeat([]byte("\n"), curStart-1), cur.Bytes()...)
			docs = append(docs, document{body: b, source: source, index: counts[source]})
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64*1024), len(body)+1)
	for ln := 1; sc.Scan(); ln++ {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, SourceMarker); ok {
			flush()
			source, srcStart = strings.TrimSpace(name), ln
			continue
		}
		if strings.HasPrefix(line, "---") && strings.TrimSpace(strings.TrimLeft(line, "-")) == "" {
			flush()
			continue
		}
		if cur.Len() == 0 {
			curStart = ln - srcStart
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	for i := range docs {
		docs[i].count = counts[docs[i].source]
	}
	return docs
}

func hasContent(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			return true
		}
	}
	return false
}

// kindPosition is the line and column of doc's kind value; 0, 0 if not found.
func kindPosition(doc []byte) (int, int) {
	var root yaml.Node
	if yaml.Unmarshal(doc, &root) != nil || len(root.Content) == 0 {
		return 0, 0
	}
	m := root.Content[0]
	for i := 0; m.Kind == yaml.MappingNode && i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "kind" {
			return m.Content[i+1].Line, m.Content[i+1].Column
		}
	}
	return 0, 0
}

package node_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestConsoleServedOnTheHTTPPort: the node mounts the console under /ui/
// of its HTTP port (node/console tests the pages themselves).
func TestConsoleServedOnTheHTTPPort(t *testing.T) {
	n := newNode(t)
	resp, err := http.Get(n.MonitorURL() + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "DataMesh") {
		t.Fatalf("GET /ui/: %d %.200s", resp.StatusCode, body)
	}
}

package registry

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/datamesh/datamesh/schemas"
)

// Buckets. Their names and every key below are part of the data on disk:
// changing one strands what older nodes wrote.
const (
	// Bucket holds resources: contracts, projections, exports, links, and
	// the projections' active versions.
	Bucket = "datamesh_registry"
	// LinksBucket holds link checkpoints and dead letters.
	LinksBucket = "datamesh_links"
)

// Keys of Bucket. Contract keys encode the aggregate and the name in
// base64url, since contract names are free text and a KV key is not; the
// other names are subject tokens and stay raw.
func contractKey(c *schemas.Contract) string {
	enc := base64.RawURLEncoding
	return "eventtype." + enc.EncodeToString([]byte(c.Aggregate)) + "." +
		enc.EncodeToString([]byte(c.Name)) + ".v" + strconv.Itoa(c.Version)
}

const (
	contractKeys   = "eventtype.>"
	projectionKeys = "projection.>"
	exportKeys     = "export.>"
	linkKeys       = "link.>"
)

func projectionKey(name string, version int) string {
	return "projection." + name + ".v" + strconv.Itoa(version)
}
func aliasKey(name string) string  { return "projection-active." + name }
func exportKey(name string) string { return "export." + name }
func linkKey(name string) string   { return "link." + name }

// Keys of LinksBucket.
func checkpointKey(link string) string { return "checkpoint." + link }
func deadLetterKey(link string, exportSeq uint64) string {
	return "deadletter." + link + "." + strconv.FormatUint(exportSeq, 10)
}
func deadLetterKeys(link string) string { return "deadletter." + link + ".*" }

// deadLetterSeq reads the export seq of a dead letter's key.
func deadLetterSeq(key string) (uint64, error) {
	return strconv.ParseUint(key[strings.LastIndexByte(key, '.')+1:], 10, 64)
}

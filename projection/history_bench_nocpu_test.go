//go:build !unix

package projection_test

import "time"

// cpuTime is not measured here: the benchmark reports no CPU rate.
func cpuTime() time.Duration { return 0 }

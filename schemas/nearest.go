package schemas

import "strings"

// Nearest is the name in names closest to word, for a "did you mean"
// hint: within about a third of word's length in edits (1 to 3),
// or a name that differs only in case. "" when none is close.
func Nearest(word string, names []string) string {
	best, bestDist := "", min(max((len(word)+1)/3, 1), 3)+1
	for _, n := range names {
		if n == word {
			continue
		}
		d := editDistance(strings.ToLower(word), strings.ToLower(n))
		if d < bestDist || (d == bestDist && best != "" && n < best) {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the edit distance of a and b, a swap of two neighbours
// counting as one edit (optimal string alignment).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

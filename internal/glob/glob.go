// Package glob matches strings against the wildcard patterns AWS uses in EC2 filter values and in
// IAM's ArnLike / StringLike conditions: * for any run of characters, ? for one.
package glob

import "strings"

// Match reports whether s matches pattern, in which * matches any run of characters, ?
// matches one character, and a backslash escapes the next character.
func Match(pattern, s string) bool {
	if !strings.ContainsAny(pattern, `*?\`) {
		return pattern == s
	}
	p, str := []rune(pattern), []rune(s)
	// Iterative wildcard matching with backtracking to the last star.
	pi, si, starP, starS := 0, 0, -1, 0
	for si < len(str) {
		if pi < len(p) {
			switch c := p[pi]; {
			case c == '*':
				starP, starS = pi, si
				pi++
				continue
			case c == '?':
				pi++
				si++
				continue
			case c == '\\' && pi+1 < len(p):
				if p[pi+1] == str[si] {
					pi += 2
					si++
					continue
				}
			case c == str[si]:
				pi++
				si++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		pi, si = starP+1, starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

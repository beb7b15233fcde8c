package ec2

import (
	"strings"
)

// Filter is one EC2 request filter: Filter.N.Name and Filter.N.Value.M.
type Filter struct {
	Name   string   `query:"Name"`
	Values []string `query:"Value"`
}

// checkFilters rejects a filter whose name known does not accept, as EC2 does.
func checkFilters(filters []Filter, known func(name string) bool) error {
	for _, f := range filters {
		if f.Name == "" {
			return missingParameter("Filter.Name")
		}
		if !known(f.Name) {
			return clientError("InvalidParameterValue", "The filter '%s' is invalid", f.Name)
		}
	}
	return nil
}

// matchFilters reports whether a resource passes all filters: every filter must match, and a filter
// matches when any of its values matches. field returns the resource's values for a filter name.
func matchFilters(filters []Filter, field func(name string) []string) bool {
	for _, f := range filters {
		if !matchAnyField(f.Values, field(f.Name)) {
			return false
		}
	}
	return true
}

func matchAnyField(patterns, values []string) bool {
	for _, p := range patterns {
		for _, v := range values {
			if globMatch(p, v) {
				return true
			}
		}
	}
	return false
}

// globMatch matches s against an EC2 filter value, in which * matches any run of characters, ?
// matches one character, and a backslash escapes the next character.
func globMatch(pattern, s string) bool {
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

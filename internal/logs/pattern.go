package logs

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Pattern is a parsed filter pattern for unstructured log events: terms that must all appear,
// "-terms" that must not, and "?terms" that each start a group with the plain terms after them,
// of which one group must appear whole (?ERROR ?WARN: either; ?"ERROR" "MainThread" ?"WARN"
// "Deadlock": ERROR with MainThread, or WARN with Deadlock). A term in double quotes may hold
// spaces and, escaped with a backslash, quotes and backslashes. Matching is case-sensitive, as in
// CloudWatch Logs. The empty pattern matches every event. JSON patterns ({ $.key = value }),
// space-delimited patterns ([a, b]) and regular expressions (%...%) are refused.
type Pattern struct {
	all, none []string
	groups    [][]string
}

// ParsePattern parses a filter pattern.
func ParsePattern(p string) (Pattern, error) {
	var pat Pattern
	s := strings.TrimLeftFunc(p, unicode.IsSpace)
	switch {
	case strings.HasPrefix(s, "{"):
		return pat, errors.New("JSON filter patterns ({ $.key = value }) are not supported by nubis yet; use terms")
	case strings.HasPrefix(s, "["):
		return pat, errors.New("space-delimited filter patterns ([a, b]) are not supported by nubis yet; use terms")
	case strings.HasPrefix(s, "%"):
		return pat, errors.New("regular expression filter patterns (%...%) are not supported by nubis yet; use terms")
	}
	for s != "" {
		kind := byte(0)
		if s[0] == '?' || s[0] == '-' {
			kind, s = s[0], s[1:]
		}
		term, rest, err := nextTerm(s)
		if err != nil {
			return Pattern{}, err
		}
		s = strings.TrimLeftFunc(rest, unicode.IsSpace)
		if term == "" {
			if kind == 0 {
				continue // ""
			}
			return Pattern{}, errors.New("a ? or - must be followed by a term")
		}
		switch {
		case kind == '?':
			pat.groups = append(pat.groups, []string{term})
		case kind == '-':
			pat.none = append(pat.none, term)
		case len(pat.groups) > 0:
			pat.groups[len(pat.groups)-1] = append(pat.groups[len(pat.groups)-1], term)
		default:
			pat.all = append(pat.all, term)
		}
	}
	return pat, nil
}

// nextTerm reads one term, quoted or not, from the start of s.
func nextTerm(s string) (term, rest string, err error) {
	if !strings.HasPrefix(s, `"`) {
		end := strings.IndexFunc(s, unicode.IsSpace)
		if end < 0 {
			end = len(s)
		}
		if strings.Contains(s[:end], `"`) {
			return "", "", errors.New("a term holds a double quote; quote the whole term")
		}
		return s[:end], s[end:], nil
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '"':
			rest = s[i+1:]
			if r, _ := utf8.DecodeRuneInString(rest); rest != "" && !unicode.IsSpace(r) {
				return "", "", errors.New("a quoted term must be followed by a space")
			}
			return b.String(), rest, nil
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated quoted term")
}

// Match reports whether a message matches the pattern.
func (p Pattern) Match(msg string) bool {
	if !containsAll(msg, p.all) {
		return false
	}
	for _, t := range p.none {
		if strings.Contains(msg, t) {
			return false
		}
	}
	if len(p.groups) == 0 {
		return true
	}
	for _, g := range p.groups {
		if containsAll(msg, g) {
			return true
		}
	}
	return false
}

func containsAll(msg string, terms []string) bool {
	for _, t := range terms {
		if !strings.Contains(msg, t) {
			return false
		}
	}
	return true
}

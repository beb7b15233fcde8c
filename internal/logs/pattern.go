package logs

import (
	"errors"
	"strings"
)

// Pattern is a parsed filter pattern for unstructured log events: terms that must all appear,
// "?terms" of which one must appear, "-terms" that must not; a term in double quotes may hold
// spaces and other characters. Matching is case-sensitive, as in CloudWatch Logs. The empty
// pattern matches every event. JSON patterns ({ $.key = value }), space-delimited patterns
// ([a, b]) and regular expressions (%...%) are refused.
type Pattern struct {
	all, any, none []string
}

// ParsePattern parses a filter pattern.
func ParsePattern(p string) (Pattern, error) {
	var pat Pattern
	s := strings.TrimSpace(p)
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
		var term string
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return Pattern{}, errors.New("unterminated quoted term")
			}
			term, s = s[1:1+end], s[2+end:]
			if s != "" && s[0] != ' ' && s[0] != '\t' {
				return Pattern{}, errors.New("a quoted term must be followed by a space")
			}
		} else {
			end := strings.IndexAny(s, " \t")
			if end < 0 {
				end = len(s)
			}
			term, s = s[:end], s[end:]
			if strings.Contains(term, `"`) {
				return Pattern{}, errors.New("a term holds a double quote; quote the whole term")
			}
		}
		s = strings.TrimLeft(s, " \t")
		if term == "" {
			if kind == 0 {
				continue // ""
			}
			return Pattern{}, errors.New("a ? or - must be followed by a term")
		}
		switch kind {
		case '?':
			pat.any = append(pat.any, term)
		case '-':
			pat.none = append(pat.none, term)
		default:
			pat.all = append(pat.all, term)
		}
	}
	return pat, nil
}

// Match reports whether a message matches the pattern.
func (p Pattern) Match(msg string) bool {
	for _, t := range p.all {
		if !strings.Contains(msg, t) {
			return false
		}
	}
	for _, t := range p.none {
		if strings.Contains(msg, t) {
			return false
		}
	}
	if len(p.any) == 0 {
		return true
	}
	for _, t := range p.any {
		if strings.Contains(msg, t) {
			return true
		}
	}
	return false
}

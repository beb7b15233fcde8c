package ec2

import "testing"

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"web", "web", true},
		{"web", "web1", false},
		{"web*", "web", true},
		{"web*", "web-1", true},
		{"*-1", "web-1", true},
		{"*-1", "web-2", false},
		{"w?b", "web", true},
		{"w?b", "wb", false},
		{"*", "", true},
		{"?", "", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{`a\*`, "a*", true},
		{`a\*`, "ab", false},
		{`a\?`, "a?", true},
		{"é?", "éa", true},
		{"**x", "abx", true},
	}
	for _, tc := range tests {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestMatchFilters(t *testing.T) {
	field := func(name string) []string {
		return map[string][]string{"key-name": {"web-1"}, "tag-key": {"env", "owner"}}[name]
	}
	tests := []struct {
		filters []Filter
		want    bool
	}{
		{nil, true},
		{[]Filter{{"key-name", []string{"db*", "web*"}}}, true},
		{[]Filter{{"key-name", []string{"db*"}}}, false},
		{[]Filter{{"key-name", []string{"web*"}}, {"tag-key", []string{"owner"}}}, true},
		{[]Filter{{"key-name", []string{"web*"}}, {"tag-key", []string{"team"}}}, false},
		{[]Filter{{"tag:x", []string{"*"}}}, false},
	}
	for _, tc := range tests {
		if got := matchFilters(tc.filters, field); got != tc.want {
			t.Errorf("matchFilters(%v) = %v, want %v", tc.filters, got, tc.want)
		}
	}
}

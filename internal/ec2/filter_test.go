package ec2

import "testing"

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

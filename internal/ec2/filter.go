package ec2

import (
	"github.com/nubis/nubis/internal/glob"
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
			if glob.Match(p, v) {
				return true
			}
		}
	}
	return false
}

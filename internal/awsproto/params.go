package awsproto

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Params are the parameters of a Query-protocol request: the form-encoded body of a POST, or the
// query string of a GET, with the protocol's own keys (Action, Version) and the SigV4 query keys
// removed.
type Params struct {
	Action  string
	Version string
	values  map[string]string
	// memberStyle is set for awsQuery, whose lists are "Name.member.N"; EC2 lists are "Name.N".
	memberStyle bool
}

// ParamError is a request parameter that cannot be decoded, or that the operation does not have.
type ParamError struct {
	Name    string
	Unknown bool
	Reason  string
}

func (e *ParamError) Error() string {
	if e.Unknown {
		return fmt.Sprintf("The parameter %s is not recognized", e.Name)
	}
	return fmt.Sprintf("Value for parameter %s is invalid: %s", e.Name, e.Reason)
}

// maxParams bounds the number of parameters one request may carry.
const maxParams = 10000

// ParseParams reads the parameters of a Query-protocol request from its form body and raw query
// string. A parameter given twice, or a malformed encoding, is an error.
func ParseParams(body []byte, rawQuery string) (Params, error) {
	p := Params{values: map[string]string{}}
	for _, src := range []string{rawQuery, string(body)} {
		for src != "" {
			var pair string
			pair, src, _ = strings.Cut(src, "&")
			if pair == "" {
				continue
			}
			k, v, _ := strings.Cut(pair, "=")
			key, err := url.QueryUnescape(k)
			if err != nil {
				return Params{}, &ParamError{Name: k, Reason: "malformed URL encoding"}
			}
			val, err := url.QueryUnescape(v)
			if err != nil {
				return Params{}, &ParamError{Name: key, Reason: "malformed URL encoding"}
			}
			if strings.HasPrefix(key, "X-Amz-") {
				continue // SigV4 presigned-URL parameters
			}
			switch key {
			case "Action":
				p.Action = val
				continue
			case "Version":
				p.Version = val
				continue
			}
			if _, dup := p.values[key]; dup {
				return Params{}, &ParamError{Name: key, Reason: "the parameter is given more than once"}
			}
			if len(p.values) >= maxParams {
				return Params{}, &ParamError{Name: key, Reason: "too many parameters"}
			}
			p.values[key] = val
		}
	}
	return p, nil
}

// Len returns the number of parameters besides Action and Version.
func (p Params) Len() int { return len(p.values) }

// Get returns the raw value of one parameter.
func (p Params) Get(name string) (string, bool) {
	v, ok := p.values[name]
	return v, ok
}

// Decode fills the struct pointed to by v from the parameters, following the `query:"Name"` tags of
// its fields (fields without a tag are skipped). Supported field types: string, bool, the integer
// types, []byte (base64, as Query blobs are), pointers to these (nil when absent), structs and
// pointers to structs, and slices of all of these (list members are Name.1, Name.2, ..., or
// Name.member.1, ... for awsQuery). Every parameter must be consumed: one the operation does not
// have is a *ParamError with Unknown set, as AWS answers UnknownParameter.
func (p Params) Decode(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("awsproto: Decode needs a pointer to a struct, not %T", v)
	}
	used := make(map[string]bool, len(p.values))
	if err := p.decodeStruct(rv.Elem(), "", used); err != nil {
		return err
	}
	if len(used) != len(p.values) {
		var unknown []string
		for k := range p.values {
			if !used[k] {
				unknown = append(unknown, k)
			}
		}
		sort.Strings(unknown)
		return &ParamError{Name: unknown[0], Unknown: true}
	}
	return nil
}

// hasPrefix reports whether any parameter is name itself or starts with name + ".".
func (p Params) hasPrefix(name string) bool {
	if _, ok := p.values[name]; ok {
		return true
	}
	dot := name + "."
	for k := range p.values {
		if strings.HasPrefix(k, dot) {
			return true
		}
	}
	return false
}

func (p Params) decodeStruct(sv reflect.Value, prefix string, used map[string]bool) error {
	st := sv.Type()
	for i := 0; i < st.NumField(); i++ {
		f := st.Field(i)
		name := f.Tag.Get("query")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			// An embedded struct's members are the outer struct's, as in encoding/json.
			if err := p.decodeStruct(sv.Field(i), prefix, used); err != nil {
				return err
			}
			continue
		}
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		if err := p.decodeValue(sv.Field(i), prefix+name, used); err != nil {
			return err
		}
	}
	return nil
}

func (p Params) decodeValue(fv reflect.Value, name string, used map[string]bool) error {
	switch fv.Kind() {
	case reflect.Pointer:
		if !p.hasPrefix(name) {
			return nil
		}
		nv := reflect.New(fv.Type().Elem())
		if err := p.decodeValue(nv.Elem(), name, used); err != nil {
			return err
		}
		fv.Set(nv)
		return nil
	case reflect.Struct:
		return p.decodeStruct(fv, name+".", used)
	case reflect.Slice:
		if fv.Type().Elem().Kind() == reflect.Uint8 {
			break // []byte is a blob
		}
		return p.decodeList(fv, name, used)
	}
	raw, ok := p.values[name]
	if !ok {
		return nil
	}
	used[name] = true
	return setScalar(fv, name, raw)
}

// decodeList fills a slice from Name.1 ... Name.N (Name.member.N for awsQuery). Indexes must be
// positive decimal integers; gaps are allowed and order follows the index, as AWS does.
func (p Params) decodeList(fv reflect.Value, name string, used map[string]bool) error {
	base := name + "."
	if p.memberStyle {
		base = name + ".member."
	}
	var keys []string
	for k := range p.values {
		if strings.HasPrefix(k, base) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys) // so that the error for several bad keys is always the same
	idx := map[int]bool{}
	for _, k := range keys {
		rest := k[len(base):]
		num, _, _ := strings.Cut(rest, ".")
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || strconv.Itoa(n) != num {
			return &ParamError{Name: k, Reason: "list index must be a positive integer"}
		}
		idx[n] = true
	}
	if _, ok := p.values[name]; ok && len(idx) == 0 {
		// "Name=" with no members is how the SDKs send an empty list.
		if p.values[name] != "" {
			return &ParamError{Name: name, Reason: "expected a list"}
		}
		used[name] = true
	}
	order := make([]int, 0, len(idx))
	for n := range idx {
		order = append(order, n)
	}
	sort.Ints(order)
	out := reflect.MakeSlice(fv.Type(), len(order), len(order))
	for i, n := range order {
		if err := p.decodeValue(out.Index(i), base+strconv.Itoa(n), used); err != nil {
			return err
		}
	}
	if len(order) > 0 {
		fv.Set(out)
	}
	return nil
}

func setScalar(fv reflect.Value, name, raw string) error {
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(raw)
	case reflect.Bool:
		switch strings.ToLower(raw) {
		case "true":
			fv.SetBool(true)
		case "false":
			fv.SetBool(false)
		default:
			return &ParamError{Name: name, Reason: fmt.Sprintf("%q is not a boolean", raw)}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, fv.Type().Bits())
		if err != nil {
			return &ParamError{Name: name, Reason: fmt.Sprintf("%q is not an integer", raw)}
		}
		fv.SetInt(n)
	case reflect.Slice: // []byte
		b, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			return &ParamError{Name: name, Reason: "not valid base64"}
		}
		fv.SetBytes(b)
	default:
		return fmt.Errorf("awsproto: cannot decode parameter %s into %s", name, fv.Type())
	}
	return nil
}

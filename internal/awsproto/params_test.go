package awsproto

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

type tag struct {
	Key   *string `query:"Key"`
	Value *string `query:"Value"`
}

type decodeTarget struct {
	Name    *string  `query:"KeyName"`
	Type    string   `query:"KeyType"`
	DryRun  bool     `query:"DryRun"`
	Max     *int     `query:"MaxResults"`
	Count   int32    `query:"Count"`
	Blob    []byte   `query:"PublicKeyMaterial"`
	Names   []string `query:"Id"`
	Filters []struct {
		Name   string   `query:"Name"`
		Values []string `query:"Value"`
	} `query:"Filter"`
	Specs []struct {
		ResourceType string `query:"ResourceType"`
		Tags         []tag  `query:"Tag"`
	} `query:"TagSpecification"`
	Nested *struct {
		Enabled bool `query:"Enabled"`
	} `query:"Monitoring"`
	skipped string
}

func decode(t *testing.T, body string) (decodeTarget, error) {
	t.Helper()
	p, err := ParseParams([]byte(body), "")
	if err != nil {
		return decodeTarget{}, err
	}
	var d decodeTarget
	return d, p.Decode(&d)
}

func TestDecode(t *testing.T) {
	d, err := decode(t, "Action=CreateKeyPair&Version=2016-11-15&KeyName=k%20one&KeyType=ed25519&DryRun=true&MaxResults=7&Count=-3"+
		"&PublicKeyMaterial=aGVsbG8%3D&Filter.2.Name=tag%3Arole&Filter.2.Value.1=web&Filter.1.Name=key-name&Filter.1.Value.2=b&Filter.1.Value.1=a"+
		"&TagSpecification.1.ResourceType=key-pair&TagSpecification.1.Tag.1.Key=k&TagSpecification.1.Tag.1.Value=&Monitoring.Enabled=false")
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%s|%s|%v|%d|%d|%s|%+v|%s|%q|%v|%v", *d.Name, d.Type, d.DryRun, *d.Max, d.Count, d.Blob, d.Filters,
		d.Specs[0].ResourceType, *d.Specs[0].Tags[0].Value, d.Specs[0].Tags[0].Value != nil, d.Nested.Enabled)
	want := "k one|ed25519|true|7|-3|hello|[{Name:key-name Values:[a b]} {Name:tag:role Values:[web]}]|key-pair|\"\"|true|false"
	if got != want {
		t.Fatalf("decoded\n got %s\nwant %s", got, want)
	}
	if d.Max == nil || d.Nested == nil {
		t.Fatal("pointers not set")
	}
	d, err = decode(t, "Id.1=a&Id.10=c&Id.2=b")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(d.Names) != "[a b c]" || d.Name != nil || d.Nested != nil || d.Max != nil {
		t.Fatalf("list decode: %+v", d)
	}
}

func TestDecodeMemberStyle(t *testing.T) {
	p, err := ParseParams([]byte("Action=X&Names.member.2=b&Names.member.1=a"), "")
	if err != nil {
		t.Fatal(err)
	}
	p.memberStyle = true
	var v struct {
		Names []string `query:"Names"`
	}
	if err := p.Decode(&v); err != nil || fmt.Sprint(v.Names) != "[a b]" {
		t.Fatalf("%v %v", v.Names, err)
	}
}

// Members of an embedded struct are the outer struct's.
func TestDecodeEmbedded(t *testing.T) {
	p, err := ParseParams([]byte("Action=X&Id=1&Extra=e&Inner.Name=n"), "")
	if err != nil {
		t.Fatal(err)
	}
	type common struct {
		ID string `query:"Id"`
	}
	var v struct {
		common
		Extra string `query:"Extra"`
		Inner struct {
			common
			Name string `query:"Name"`
		} `query:"Inner"`
	}
	if err := p.Decode(&v); err != nil || v.ID != "1" || v.Extra != "e" || v.Inner.Name != "n" || v.Inner.ID != "" {
		t.Fatalf("%+v %v", v, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		body, param string
		unknown     bool
	}{
		{"Bogus=1", "Bogus", true},
		{"KeyName=a&Extra.1=x", "Extra.1", true},
		{"DryRun=yes", "DryRun", false},
		{"MaxResults=ten", "MaxResults", false},
		{"Count=99999999999", "Count", false},
		{"PublicKeyMaterial=%21%21", "PublicKeyMaterial", false},
		{"Id.0=a", "Id.0", false},
		{"Id.01=a", "Id.01", false},
		{"Id.x=a", "Id.x", false},
		{"Id=a", "Id", false},
		{"Filter.1.Nme=a", "Filter.1.Nme", true},
		{"KeyName=a&KeyName=b", "KeyName", false},
		{"KeyName=%zz", "KeyName", false},
	}
	for _, tc := range tests {
		_, err := decode(t, tc.body)
		var pe *ParamError
		if !errors.As(err, &pe) {
			t.Errorf("%s: got %v, want a ParamError", tc.body, err)
			continue
		}
		if pe.Name != tc.param || pe.Unknown != tc.unknown {
			t.Errorf("%s: got %+v, want param %s unknown=%v", tc.body, pe, tc.param, tc.unknown)
		}
	}
}

func TestParseParamsSkipsProtocolKeys(t *testing.T) {
	p, err := ParseParams([]byte("Action=A&Version=V&X-Amz-Signature=s"), "X-Amz-Date=d&Foo=1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Action != "A" || p.Version != "V" || p.Len() != 1 {
		t.Fatalf("%+v", p)
	}
}

// FuzzParseParams checks that no input makes the Query decoder panic, and that what it accepts it
// decodes consistently.
func FuzzParseParams(f *testing.F) {
	for _, s := range []string{
		"Action=CreateKeyPair&Version=2016-11-15&KeyName=k",
		"Filter.1.Name=a&Filter.1.Value.1=b&Filter.2.Value.3=c",
		"TagSpecification.1.Tag.1.Key=k&TagSpecification.1.Tag.1.Value=v",
		"KeyName.1=a&KeyName.2=%20", "a=%", "==&&=", "PublicKeyMaterial=aGk=", "Monitoring.Enabled=true",
		"Id.99999999999999999999=a", "Filter.1.Value.-1=x",
	} {
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, body, query string) {
		p, err := ParseParams([]byte(body), query)
		if err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a ParamError", err)
			}
			return
		}
		var a, b decodeTarget
		errA, errB := p.Decode(&a), p.Decode(&b)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if fmt.Sprint(errA) != fmt.Sprint(errB) || string(ja) != string(jb) {
			t.Fatalf("decoding twice differs: %v / %v", errA, errB)
		}
		if errA != nil && !strings.Contains(errA.Error(), "parameter") {
			t.Fatalf("unhelpful error %q", errA)
		}
	})
}

package lambda

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// Layers: zips published as numbered, immutable versions of a named layer, which functions list
// (up to five) in Layers. Their contents are merged, in order, into the read-only /opt of the
// function's environments, where the runtimes look for libraries (/opt/python, /opt/nodejs/
// node_modules, /opt/lib, /opt/bin). A deleted layer version can no longer be added to functions;
// functions that use it keep it, as on AWS.

// maxLayers is how many layers a function can use.
const maxLayers = 5

var layerNameRE = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,140}$`)

// runtimeEnum is the Runtime enum of the Lambda API: the labels a layer's CompatibleRuntimes and
// the list calls' CompatibleRuntime filter may use (they label, they do not run anything).
var runtimeEnum = strings.Fields(`nodejs nodejs4.3 nodejs6.10 nodejs8.10 nodejs10.x nodejs12.x nodejs14.x
	nodejs16.x nodejs18.x nodejs20.x nodejs22.x java8 java8.al2 java11 java17 java21 python2.7 python3.6
	python3.7 python3.8 python3.9 python3.10 python3.11 python3.12 python3.13 dotnetcore1.0 dotnetcore2.0
	dotnetcore2.1 dotnetcore3.1 dotnet6 dotnet8 nodejs4.3-edge go1.x ruby2.5 ruby2.7 ruby3.2 ruby3.3
	ruby3.4 provided provided.al2 provided.al2023`)

func checkRuntimeLabel(rt, member string) error {
	if !slices.Contains(runtimeEnum, rt) {
		return validation(rt, member, "Member must satisfy enum value set: ["+strings.Join(runtimeEnum, ", ")+"]")
	}
	return nil
}

// layerPagination reads Marker (a layer name or version number) and MaxItems (1 to 50).
func layerPagination(r *awsproto.Request) (marker string, max int, err error) {
	q := r.HTTP.URL.Query()
	max = 50
	if v := q.Get("MaxItems"); v != "" {
		if n, e := strconv.Atoi(v); e != nil || n < 1 || n > 50 {
			return "", 0, validation(v, "maxItems", "Member must have value between 1 and 50")
		} else {
			max = n
		}
	}
	return q.Get("Marker"), max, nil
}

// layerVersion is a stored layer version.
type layerVersion struct {
	Name                    string   `json:"name"`
	Version                 int      `json:"version"`
	Description             string   `json:"description,omitempty"`
	CompatibleRuntimes      []string `json:"compatibleRuntimes,omitempty"`
	CompatibleArchitectures []string `json:"compatibleArchitectures,omitempty"`
	LicenseInfo             string   `json:"licenseInfo,omitempty"`
	Created                 string   `json:"created"`
	CodeHex                 string   `json:"codeHex"`
	CodeSha256              string   `json:"codeSha256"`
	CodeSize                int64    `json:"codeSize"`
	Unzipped                int64    `json:"unzipped"`
}

// layer is what a layer name keeps across its versions: version numbers are never reused.
type layer struct {
	LastVersion int `json:"lastVersion"`
}

// LayerRef is a layer version as a function's configuration lists it.
type LayerRef struct {
	Arn      string `json:"Arn"`
	CodeSize int64  `json:"CodeSize"`
}

func (s *Service) layerKey(r *awsproto.Request, name string) string {
	return s.prefix(r) + "layer/" + name
}

func (s *Service) layerVersionKey(r *awsproto.Request, name string, v int) string {
	return s.prefix(r) + "layerversion/" + name + "/" + fmt.Sprintf("%010d", v)
}

func (s *Service) layerARN(r *awsproto.Request, name string) string {
	return fmt.Sprintf("arn:aws:lambda:%s:%s:layer:%s", s.cfg.Region, r.Caller.AccountID, name)
}

// layerName reads a LayerName path member: a name, or the layer's ARN.
func (s *Service) layerName(r *awsproto.Request) (string, error) {
	name := r.HTTP.PathValue("layer")
	if rest, ok := strings.CutPrefix(name, s.layerARN(r, "")); ok {
		name = rest
	}
	if !layerNameRE.MatchString(name) {
		return "", validation(name, "layerName", "Member must satisfy regular expression pattern: "+
			`(arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+`)
	}
	return name, nil
}

type layerVersionOut struct {
	Content                 *layerContent `json:"Content,omitempty"`
	LayerArn                string        `json:"LayerArn,omitempty"`
	LayerVersionArn         string        `json:"LayerVersionArn"`
	Description             string        `json:"Description"`
	CreatedDate             string        `json:"CreatedDate"`
	Version                 int           `json:"Version"`
	CompatibleRuntimes      []string      `json:"CompatibleRuntimes,omitempty"`
	CompatibleArchitectures []string      `json:"CompatibleArchitectures,omitempty"`
	LicenseInfo             string        `json:"LicenseInfo,omitempty"`
}

type layerContent struct {
	Location   string `json:"Location"`
	CodeSha256 string `json:"CodeSha256"`
	CodeSize   int64  `json:"CodeSize"`
}

// out renders a layer version; withContent adds the Content (with a presigned Location) that
// Publish and Get return and the list items leave out.
func (s *Service) layerOut(r *awsproto.Request, lv layerVersion, withContent bool) (layerVersionOut, error) {
	arn := s.layerARN(r, lv.Name)
	out := layerVersionOut{LayerVersionArn: arn + ":" + strconv.Itoa(lv.Version), Description: lv.Description,
		CreatedDate: lv.Created, Version: lv.Version, CompatibleRuntimes: lv.CompatibleRuntimes,
		CompatibleArchitectures: lv.CompatibleArchitectures, LicenseInfo: lv.LicenseInfo}
	if withContent {
		loc, err := s.cfg.Presign(codePath+lv.CodeHex, codeURLExpiry)
		if err != nil {
			return out, fmt.Errorf("presign layer location: %w", err)
		}
		out.LayerArn = arn
		out.Content = &layerContent{Location: loc, CodeSha256: lv.CodeSha256, CodeSize: lv.CodeSize}
	}
	return out, nil
}

type publishLayerInput struct {
	Description string
	Content     struct {
		ZipFile                          []byte
		S3Bucket, S3Key, S3ObjectVersion string
	}
	CompatibleRuntimes      []string
	CompatibleArchitectures []string
	LicenseInfo             string
}

func (s *Service) publishLayerVersion(ctx context.Context, r *awsproto.Request) (int, any, error) {
	name, err := s.layerName(r)
	if err != nil {
		return 0, nil, err
	}
	var in publishLayerInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.Content.S3Bucket != "" || in.Content.S3Key != "" {
		return 0, nil, invalidParam("nubis has no S3 yet: give the layer's content as ZipFile.")
	}
	if len(in.Content.ZipFile) == 0 {
		return 0, nil, invalidParam("Please provide a source for the layer content.")
	}
	if err := validateDescription(in.Description); err != nil {
		return 0, nil, err
	}
	if len(in.LicenseInfo) > 512 {
		return 0, nil, validation(in.LicenseInfo, "licenseInfo", "Member must have length less than or equal to 512")
	}
	if len(in.CompatibleRuntimes) > 15 {
		return 0, nil, validation(in.CompatibleRuntimes, "compatibleRuntimes", "Member must have length less than or equal to 15")
	}
	for _, rt := range in.CompatibleRuntimes {
		if err := checkRuntimeLabel(rt, "compatibleRuntimes"); err != nil {
			return 0, nil, err
		}
	}
	if len(in.CompatibleArchitectures) > 2 {
		return 0, nil, validation(in.CompatibleArchitectures, "compatibleArchitectures", "Member must have length less than or equal to 2")
	}
	for _, a := range in.CompatibleArchitectures {
		if a != "x86_64" && a != "arm64" {
			return 0, nil, validation(in.CompatibleArchitectures, "compatibleArchitectures",
				"Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64]]")
		}
	}
	info, err := checkZip(in.Content.ZipFile)
	if err != nil {
		return 0, nil, err
	}
	if err := s.code.put(info, in.Content.ZipFile); err != nil {
		return 0, nil, err
	}
	lv := layerVersion{Name: name, Description: in.Description, CompatibleRuntimes: in.CompatibleRuntimes,
		CompatibleArchitectures: in.CompatibleArchitectures, LicenseInfo: in.LicenseInfo, Created: lastModified(s.now()),
		CodeHex: info.Hex, CodeSha256: info.Sha256, CodeSize: info.Size, Unzipped: info.Unzipped}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		l, _, err := store.GetJSON[layer](tx, s.layerKey(r, name))
		if err != nil {
			return err
		}
		l.LastVersion++
		lv.Version = l.LastVersion
		if err := store.PutJSON(tx, s.layerKey(r, name), l); err != nil {
			return err
		}
		return store.PutJSON(tx, s.layerVersionKey(r, name, lv.Version), lv)
	})
	if err != nil {
		return 0, nil, err
	}
	out, err := s.layerOut(r, lv, true)
	if err != nil {
		return 0, nil, err
	}
	return 201, out, nil
}

// layerVersionNumber reads the VersionNumber path member.
func layerVersionNumber(r *awsproto.Request) (int, error) {
	v := r.HTTP.PathValue("version")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, validation(v, "versionNumber", "Member must have value greater than or equal to 1")
	}
	return n, nil
}

func layerVersionNotFound() error {
	return notFound("The resource you requested does not exist.")
}

func (s *Service) getLayerVersion(ctx context.Context, r *awsproto.Request) (int, any, error) {
	name, err := s.layerName(r)
	if err != nil {
		return 0, nil, err
	}
	n, err := layerVersionNumber(r)
	if err != nil {
		return 0, nil, err
	}
	return s.layerVersionResponse(ctx, r, name, n)
}

func (s *Service) layerVersionResponse(ctx context.Context, r *awsproto.Request, name string, n int) (int, any, error) {
	var lv layerVersion
	err := s.view(ctx, func(tx store.Tx) error {
		var ok bool
		var err error
		lv, ok, err = store.GetJSON[layerVersion](tx, s.layerVersionKey(r, name, n))
		if err == nil && !ok {
			err = layerVersionNotFound()
		}
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	out, err := s.layerOut(r, lv, true)
	if err != nil {
		return 0, nil, err
	}
	return 200, out, nil
}

func (s *Service) deleteLayerVersion(ctx context.Context, r *awsproto.Request) (int, any, error) {
	name, err := s.layerName(r)
	if err != nil {
		return 0, nil, err
	}
	n, err := layerVersionNumber(r)
	if err != nil {
		return 0, nil, err
	}
	// Deleting a version that is not there is no error, as on AWS.
	err = s.store.Update(ctx, func(tx store.Tx) error {
		err := tx.Delete(s.layerVersionKey(r, name, n))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return 204, nil, nil
}

// layerVersions lists the stored versions of a layer (or of every layer, name ""), oldest first.
func (s *Service) layerVersions(tx store.Tx, r *awsproto.Request, name string) ([]layerVersion, error) {
	prefix := s.prefix(r) + "layerversion/"
	if name != "" {
		prefix += name + "/"
	}
	kvs, err := tx.List(prefix, "", 0)
	if err != nil {
		return nil, err
	}
	var out []layerVersion
	for _, kv := range kvs {
		var lv layerVersion
		if err := json.Unmarshal(kv.Value, &lv); err != nil {
			return nil, err
		}
		out = append(out, lv)
	}
	return out, nil
}

// matches reports whether a layer version suits the CompatibleRuntime and CompatibleArchitecture
// filters of the list calls.
func (lv layerVersion) matches(runtime, arch string) bool {
	return (runtime == "" || slices.Contains(lv.CompatibleRuntimes, runtime)) &&
		(arch == "" || slices.Contains(lv.CompatibleArchitectures, arch))
}

func layerFilters(r *awsproto.Request) (runtime, arch string, err error) {
	q := r.HTTP.URL.Query()
	runtime, arch = q.Get("CompatibleRuntime"), q.Get("CompatibleArchitecture")
	if runtime != "" {
		if err := checkRuntimeLabel(runtime, "compatibleRuntime"); err != nil {
			return "", "", err
		}
	}
	if arch != "" && arch != "x86_64" && arch != "arm64" {
		return "", "", validation(arch, "compatibleArchitecture", "Member must satisfy enum value set: [x86_64, arm64]")
	}
	return runtime, arch, nil
}

func (s *Service) listLayerVersions(ctx context.Context, r *awsproto.Request) (int, any, error) {
	name, err := s.layerName(r)
	if err != nil {
		return 0, nil, err
	}
	runtime, arch, err := layerFilters(r)
	if err != nil {
		return 0, nil, err
	}
	marker, max, err := layerPagination(r)
	if err != nil {
		return 0, nil, err
	}
	after := 0
	if marker != "" {
		if after, err = strconv.Atoi(marker); err != nil || after < 1 {
			return 0, nil, invalidParam("The marker %q is not valid.", marker)
		}
	}
	var versions []layerVersion
	if err := s.view(ctx, func(tx store.Tx) error {
		versions, err = s.layerVersions(tx, r, name)
		return err
	}); err != nil {
		return 0, nil, err
	}
	slices.Reverse(versions) // newest first, as on AWS
	out := struct {
		LayerVersions []layerVersionOut `json:"LayerVersions"`
		NextMarker    string            `json:"NextMarker,omitempty"`
	}{LayerVersions: []layerVersionOut{}}
	for _, lv := range versions {
		if !lv.matches(runtime, arch) || (after > 0 && lv.Version >= after) {
			continue
		}
		if len(out.LayerVersions) == max {
			out.NextMarker = strconv.Itoa(out.LayerVersions[max-1].Version)
			break
		}
		o, _ := s.layerOut(r, lv, false)
		out.LayerVersions = append(out.LayerVersions, o)
	}
	return 200, out, nil
}

func (s *Service) listLayers(ctx context.Context, r *awsproto.Request) (int, any, error) {
	q := r.HTTP.URL.Query()
	if q.Get("find") == "LayerVersion" {
		return s.getLayerVersionByArn(ctx, r, q.Get("Arn"))
	}
	runtime, arch, err := layerFilters(r)
	if err != nil {
		return 0, nil, err
	}
	marker, max, err := layerPagination(r)
	if err != nil {
		return 0, nil, err
	}
	var versions []layerVersion
	if err := s.view(ctx, func(tx store.Tx) error {
		versions, err = s.layerVersions(tx, r, "")
		return err
	}); err != nil {
		return 0, nil, err
	}
	// Each layer with its latest version that matches the filters, by name.
	type item struct {
		LayerName             string          `json:"LayerName"`
		LayerArn              string          `json:"LayerArn"`
		LatestMatchingVersion layerVersionOut `json:"LatestMatchingVersion"`
	}
	latest := map[string]layerVersion{}
	for _, lv := range versions {
		if lv.matches(runtime, arch) && (marker == "" || lv.Name > marker) {
			latest[lv.Name] = lv // versions are listed oldest first
		}
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range latest {
			if !yield(n) {
				return
			}
		}
	})
	out := struct {
		Layers     []item `json:"Layers"`
		NextMarker string `json:"NextMarker,omitempty"`
	}{Layers: []item{}}
	for i, n := range names {
		if i == max {
			out.NextMarker = names[i-1]
			break
		}
		o, _ := s.layerOut(r, latest[n], false)
		out.Layers = append(out.Layers, item{LayerName: n, LayerArn: s.layerARN(r, n), LatestMatchingVersion: o})
	}
	return 200, out, nil
}

// parseLayerVersionARN splits a layer version ARN of this account and region into its name and
// number.
func (s *Service) parseLayerVersionARN(r *awsproto.Request, arn string) (string, int, bool) {
	rest, ok := strings.CutPrefix(arn, s.layerARN(r, ""))
	name, num, ok2 := strings.Cut(rest, ":")
	n, err := strconv.Atoi(num)
	if !ok || !ok2 || err != nil || n < 1 || !layerNameRE.MatchString(name) {
		return "", 0, false
	}
	return name, n, true
}

var layerVersionARNRE = regexp.MustCompile(`^arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+$`)

func (s *Service) getLayerVersionByArn(ctx context.Context, r *awsproto.Request, arn string) (int, any, error) {
	if !layerVersionARNRE.MatchString(arn) || len(arn) > 140 {
		return 0, nil, validation(arn, "arn", "Member must satisfy regular expression pattern: "+
			`(arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+)`)
	}
	name, n, ok := s.parseLayerVersionARN(r, arn)
	if !ok {
		return 0, nil, layerVersionNotFound()
	}
	return s.layerVersionResponse(ctx, r, name, n)
}

// resolveLayers checks a function's Layers (layer version ARNs of this account, at most five, one
// version per layer, each existing) and returns them as the configuration lists them, with the
// code blobs to merge into /opt, in order, and their unzipped size.
func (s *Service) resolveLayers(tx store.Tx, r *awsproto.Request, arns []string) ([]LayerRef, []string, int64, error) {
	if len(arns) > maxLayers {
		return nil, nil, 0, invalidParam("Cannot reference more than %d layers.", maxLayers)
	}
	var refs []LayerRef
	var hexes []string
	var total int64
	seen := map[string]bool{}
	for _, arn := range arns {
		if !layerVersionARNRE.MatchString(arn) {
			return nil, nil, 0, validation(arns, "layers", "Member must satisfy constraint: [Member must satisfy regular expression pattern: "+
				`arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+]`)
		}
		name, n, ok := s.parseLayerVersionARN(r, arn)
		var lv layerVersion
		if ok {
			var err error
			if lv, ok, err = store.GetJSON[layerVersion](tx, s.layerVersionKey(r, name, n)); err != nil {
				return nil, nil, 0, err
			}
		}
		if !ok {
			return nil, nil, 0, invalidParam("Layer version %s does not exist.", arn)
		}
		if seen[name] {
			return nil, nil, 0, invalidParam("Two different versions of the same layer are not allowed to be referenced in the same function. %s is referenced more than once.", s.layerARN(r, name))
		}
		seen[name] = true
		refs = append(refs, LayerRef{Arn: arn, CodeSize: lv.CodeSize})
		hexes = append(hexes, lv.CodeHex)
		total += lv.Unzipped
	}
	return refs, hexes, total, nil
}

// checkUnzipped refuses code that, with its layers, unzips to more than Lambda allows.
func checkUnzipped(code, layers int64) error {
	if code+layers > maxUnzippedBytes {
		return invalidParam("Function code combined with layers exceeds the maximum allowed size of %d bytes. The actual size is %d bytes.",
			maxUnzippedBytes, code+layers)
	}
	return nil
}

// codeUnzipped is the unzipped size of a version's code (read from its zip for versions stored
// before the size was kept).
func (s *Service) codeUnzipped(v version) int64 {
	if v.CodeUnzipped > 0 {
		return v.CodeUnzipped
	}
	zr, err := zip.OpenReader(s.code.path(v.CodeHex))
	if err != nil {
		return 0
	}
	defer zr.Close()
	var n int64
	for _, f := range zr.File {
		n += int64(f.UncompressedSize64)
	}
	return n
}

// optDir is where the merged contents of a list of layers live: the /opt of environments.
func (s *Service) optDir(hexes []string) string {
	sum := sha256.Sum256([]byte(strings.Join(hexes, ",")))
	return filepath.Join(s.cfg.DataDir, "lambda", "opt", hex.EncodeToString(sum[:16]))
}

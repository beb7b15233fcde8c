package lambda

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// ref is a function reference from a request: name plus optional qualifier (version or alias).
type ref struct{ name, qualifier string }

// parseRef accepts every form Lambda does: name, name:qualifier, 123456789012:function:name[:q] and
// arn:aws:lambda:region:123456789012:function:name[:q]. The account and region must be ours.
func (s *Service) parseRef(r *awsproto.Request, raw, queryQualifier string) (ref, error) {
	parts := strings.Split(raw, ":")
	var name, qual string
	switch {
	case len(parts) >= 7 && parts[0] == "arn" && parts[2] == "lambda" && parts[5] == "function" && len(parts) <= 8:
		if parts[3] != s.cfg.Region || parts[4] != r.Caller.AccountID {
			return ref{}, functionNotFound(raw)
		}
		name = parts[6]
		if len(parts) == 8 {
			qual = parts[7]
		}
	case len(parts) >= 3 && parts[1] == "function" && len(parts) <= 4:
		if parts[0] != r.Caller.AccountID {
			return ref{}, functionNotFound(raw)
		}
		name = parts[2]
		if len(parts) == 4 {
			qual = parts[3]
		}
	case len(parts) <= 2:
		name = parts[0]
		if len(parts) == 2 {
			qual = parts[1]
		}
	default:
		return ref{}, validateFunctionName(raw)
	}
	if err := validateFunctionName(name); err != nil {
		return ref{}, err
	}
	if queryQualifier != "" {
		if qual != "" && qual != queryQualifier {
			return ref{}, invalidParam("The derived qualifier from the function name does not match the specified qualifier.")
		}
		qual = queryQualifier
	}
	if qual != "" && qual != "$LATEST" && !aliasPattern.MatchString(qual) {
		return ref{}, validation(qual, "qualifier", `Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)`)
	}
	return ref{name: name, qualifier: qual}, nil
}

// arn is the ARN of the reference, qualified if it has a qualifier.
func (s *Service) arn(r *awsproto.Request, f ref) string {
	a := s.functionARN(r, f.name)
	if f.qualifier != "" {
		a += ":" + f.qualifier
	}
	return a
}

// requireFunction returns the function a reference names, or ResourceNotFoundException.
func (s *Service) requireFunction(tx store.Tx, r *awsproto.Request, f ref) (function, error) {
	fn, ok, err := store.GetJSON[function](tx, s.functionKey(r, f.name))
	if err == nil && !ok {
		err = functionNotFound(s.arn(r, f))
	}
	return fn, err
}

// afterMarker turns a pagination marker made by encodeMarker into the store key to list after:
// prefix followed by the marker's position ("" for no marker).
func afterMarker(marker, prefix string) (string, error) {
	if marker == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(marker)
	if err != nil {
		return "", invalidParam("Invalid marker: %s", marker)
	}
	return prefix + string(b), nil
}

func encodeMarker(pos string) string { return base64.RawURLEncoding.EncodeToString([]byte(pos)) }

// resolve returns the version a reference names: $LATEST, a number, or an alias's version.
func (s *Service) resolve(tx store.Tx, r *awsproto.Request, f ref) (version, error) {
	return s.resolveRouted(tx, r, f, false)
}

// resolveRouted is resolve; with routed, an alias with a routing configuration sends the
// reference to its additional version with that version's weight, as Invoke does.
func (s *Service) resolveRouted(tx store.Tx, r *awsproto.Request, f ref, routed bool) (version, error) {
	if _, err := s.requireFunction(tx, r, f); err != nil {
		return version{}, err
	}
	ver := f.qualifier
	if ver == "" {
		ver = "$LATEST"
	}
	if ver != "$LATEST" && !digits.MatchString(ver) {
		a, ok, err := store.GetJSON[AliasConfiguration](tx, s.aliasKey(r, f.name, ver))
		if err != nil {
			return version{}, err
		}
		if !ok {
			return version{}, functionNotFound(s.arn(r, f))
		}
		ver = a.FunctionVersion
		if routed {
			ver = a.pick(rand.Float64())
		}
	}
	v, ok, err := store.GetJSON[version](tx, s.versionKey(r, f.name, ver))
	if err != nil {
		return version{}, err
	}
	if !ok {
		return version{}, functionNotFound(s.arn(r, f))
	}
	return v, nil
}

// view runs fn in a transaction that only reads.
func (s *Service) view(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.store.View(ctx, fn)
}

type createFunctionInput struct {
	FunctionName string
	Runtime      string
	Role         string
	Handler      string
	Code         struct {
		ZipFile         []byte
		S3Bucket        string
		S3Key           string
		S3ObjectVersion string
		ImageUri        string
	}
	Description       string
	Timeout           *int
	MemorySize        *int
	Publish           bool
	PackageType       string
	Environment       *Environment
	Tags              map[string]string
	Architectures     []string
	EphemeralStorage  *EphemeralStorage
	Layers            []string
	VpcConfig         *struct{ SubnetIds, SecurityGroupIds []string }
	FileSystemConfigs []any
	LoggingConfig     *loggingConfigInput
}

func (s *Service) createFunction(ctx context.Context, r *awsproto.Request) (int, any, error) {
	var in createFunctionInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if err := validateFunctionName(in.FunctionName); err != nil {
		return 0, nil, err
	}
	if in.PackageType == "Image" || in.Code.ImageUri != "" {
		return 0, nil, invalidParam("nubis runs Zip deployment packages; PackageType Image is not supported yet.")
	}
	if in.PackageType != "" && in.PackageType != "Zip" {
		return 0, nil, validation(in.PackageType, "packageType", "Member must satisfy enum value set: [Zip, Image]")
	}
	if in.Runtime == "" || in.Handler == "" {
		return 0, nil, invalidParam("Runtime and Handler are mandatory parameters for functions created with deployment packages.")
	}
	if in.Code.S3Bucket != "" || in.Code.S3Key != "" {
		return 0, nil, invalidParam("nubis has no S3 yet: give the code as ZipFile.")
	}
	if len(in.Code.ZipFile) == 0 {
		return 0, nil, invalidParam("Please provide a source for function code.")
	}
	if len(in.FileSystemConfigs) > 0 || in.VpcConfig != nil && len(in.VpcConfig.SubnetIds) > 0 {
		return 0, nil, invalidParam("nubis does not support FileSystemConfigs or VpcConfig for functions yet.")
	}
	cfg := FunctionConfiguration{
		FunctionName: in.FunctionName, FunctionArn: s.functionARN(r, in.FunctionName), Runtime: in.Runtime,
		Role: in.Role, Handler: in.Handler, Description: in.Description, Timeout: 3, MemorySize: 128,
		Version: "$LATEST", Environment: in.Environment, PackageType: "Zip", Architectures: []string{hostArch()},
		EphemeralStorage: EphemeralStorage{Size: 512},
	}
	if in.Timeout != nil {
		cfg.Timeout = *in.Timeout
	}
	if in.MemorySize != nil {
		cfg.MemorySize = *in.MemorySize
	}
	if in.EphemeralStorage != nil {
		cfg.EphemeralStorage = *in.EphemeralStorage
	}
	if in.Architectures != nil {
		cfg.Architectures = in.Architectures
	}
	if err := validateConfig(cfg, in.Architectures); err != nil {
		return 0, nil, err
	}
	if err := validateTags(in.Tags); err != nil {
		return 0, nil, err
	}
	info, err := checkZip(in.Code.ZipFile)
	if err != nil {
		return 0, nil, err
	}
	if err := s.code.put(info, in.Code.ZipFile); err != nil {
		return 0, nil, err
	}
	now := s.now()
	cfg.CodeSha256, cfg.CodeSize, cfg.LastModified = info.Sha256, info.Size, lastModified(now)
	cfg.State, cfg.StateReason, cfg.StateReasonCode = StatePending, "The function is being created.", "Creating"
	cfg.RevisionID = newRevision()
	fillDefaults(&cfg)
	if err := applyLogging(&cfg, in.LoggingConfig); err != nil {
		return 0, nil, err
	}
	latest := version{Config: cfg, CodeHex: info.Hex, CodeUnzipped: info.Unzipped}
	out := cfg
	err = s.store.Update(ctx, func(tx store.Tx) error {
		refs, hexes, size, err := s.resolveLayers(tx, r, in.Layers)
		if err != nil {
			return err
		}
		if err := checkUnzipped(info.Unzipped, size); err != nil {
			return err
		}
		latest.Config.Layers, latest.LayerHexes, latest.LayersUnzipped = refs, hexes, size
		out = latest.Config
		fn := function{Name: in.FunctionName, Created: now.UTC(), Tags: in.Tags}
		b, err := jsonBytes(fn)
		if err != nil {
			return err
		}
		if err := tx.Create(s.functionKey(r, fn.Name), b); err != nil {
			if errors.Is(err, store.ErrExists) {
				return conflict("Function already exist: %s", fn.Name)
			}
			return err
		}
		if err := store.PutJSON(tx, s.versionKey(r, fn.Name, "$LATEST"), latest); err != nil {
			return err
		}
		if in.Publish {
			v, err := s.publish(tx, r, &fn, latest, cfg.Description)
			if err != nil {
				return err
			}
			out = v.Config
			return store.PutJSON(tx, s.functionKey(r, fn.Name), fn)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	s.prepareAsync(s.versionKey(r, in.FunctionName, "$LATEST"), cfg.RevisionID)
	return 201, out, nil
}

// validateConfig checks the members a create or a configuration update sets.
func validateConfig(cfg FunctionConfiguration, archs []string) error {
	for _, err := range []error{
		validateRuntime(cfg.Runtime), validateRole(cfg.Role), validateHandler(cfg.Handler),
		validateDescription(cfg.Description), validateTimeout(cfg.Timeout), validateMemory(cfg.MemorySize),
		validateEphemeral(cfg.EphemeralStorage.Size), validateEnvironment(cfg.Environment), validateArchitectures(archs),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// fillDefaults sets the members AWS always reports.
func fillDefaults(cfg *FunctionConfiguration) {
	cfg.TracingConfig = map[string]string{"Mode": "PassThrough"}
	cfg.SnapStart = map[string]string{"ApplyOn": "None", "OptimizationStatus": "Off"}
	cfg.LoggingConfig = map[string]string{"LogFormat": "Text", "LogGroup": "/aws/lambda/" + cfg.FunctionName}
}

type getFunctionOutput struct {
	Configuration FunctionConfiguration `json:"Configuration"`
	Code          map[string]string     `json:"Code"`
	Tags          map[string]string     `json:"Tags,omitempty"`
	Concurrency   *concurrency          `json:"Concurrency,omitempty"`
}

type concurrency struct {
	ReservedConcurrentExecutions *int `json:"ReservedConcurrentExecutions,omitempty"`
}

func (s *Service) getFunction(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), r.HTTP.URL.Query().Get("Qualifier"))
	if err != nil {
		return 0, nil, err
	}
	var out getFunctionOutput
	var codeHex string
	err = s.view(ctx, func(tx store.Tx) error {
		v, err := s.resolve(tx, r, f)
		if err != nil {
			return err
		}
		fn, err := s.requireFunction(tx, r, f)
		if err != nil {
			return err
		}
		out.Configuration, codeHex, out.Tags = v.Config, v.CodeHex, fn.Tags
		if fn.Reserved != nil {
			out.Concurrency = &concurrency{ReservedConcurrentExecutions: fn.Reserved}
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	loc, err := s.cfg.Presign(codePath+codeHex, codeURLExpiry)
	if err != nil {
		return 0, nil, fmt.Errorf("presign code location: %w", err)
	}
	out.Code = map[string]string{"RepositoryType": "S3", "Location": loc}
	return 200, out, nil
}

func (s *Service) getFunctionConfiguration(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), r.HTTP.URL.Query().Get("Qualifier"))
	if err != nil {
		return 0, nil, err
	}
	var v version
	err = s.view(ctx, func(tx store.Tx) error {
		v, err = s.resolve(tx, r, f)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, v.Config, nil
}

type listFunctionsOutput struct {
	Functions  []FunctionConfiguration `json:"Functions"`
	NextMarker string                  `json:"NextMarker,omitempty"`
}

func (s *Service) listFunctions(ctx context.Context, r *awsproto.Request) (int, any, error) {
	q := r.HTTP.URL.Query()
	marker, max, err := pagination(q)
	if err != nil {
		return 0, nil, err
	}
	all := false
	switch q.Get("FunctionVersion") {
	case "":
	case "ALL":
		all = true
	default:
		return 0, nil, validation(q.Get("FunctionVersion"), "functionVersion", "Member must satisfy enum value set: [ALL]")
	}
	prefix := s.prefix(r) + "version/"
	after, err := afterMarker(marker, prefix)
	if err != nil {
		return 0, nil, err
	}
	kvs, err := s.store.List(ctx, prefix, after, 0)
	if err != nil {
		return 0, nil, err
	}
	out := listFunctionsOutput{Functions: []FunctionConfiguration{}}
	for _, kv := range kvs {
		if !all && !strings.HasSuffix(kv.Key, "/$LATEST") {
			continue
		}
		if len(out.Functions) == max {
			last := out.Functions[max-1]
			out.NextMarker = encodeMarker(last.FunctionName + "/" + versionSuffix(last.Version))
			break
		}
		var v version
		if err := jsonUnmarshal(kv.Value, &v); err != nil {
			return 0, nil, err
		}
		out.Functions = append(out.Functions, v.Config)
	}
	return 200, out, nil
}

// versionSuffix is the last element of a version's store key.
func versionSuffix(ver string) string {
	if ver == "$LATEST" {
		return ver
	}
	var n int
	fmt.Sscan(ver, &n)
	return fmt.Sprintf("%010d", n)
}

// pick chooses the version an invocation of the alias runs: the additional version with its
// weight's probability (x is uniform in [0, 1)), else the alias's version.
func (a AliasConfiguration) pick(x float64) string {
	for v, w := range a.RoutingConfig.weights() {
		if x < w {
			return v
		}
	}
	return a.FunctionVersion
}

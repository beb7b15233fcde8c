package server_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/nubis/nubis/internal/server/servertest"
)

const role = "arn:aws:iam::123456789012:role/lambda-basic"

type zipEntry struct {
	name, body string
	mode       os.FileMode
}

func makeZip(t *testing.T, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, e.body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const meanHandler = `from statistics import mean

def lambda_handler(event, context):
    return {"statusCode": 200, "body": mean(event["nums"])}
`

func createMean(t *testing.T, c *lambda.Client, name string, mutate ...func(*lambda.CreateFunctionInput)) *lambda.CreateFunctionOutput {
	t.Helper()
	in := &lambda.CreateFunctionInput{FunctionName: aws.String(name), Runtime: types.RuntimePython39, Role: aws.String(role),
		Handler: aws.String("lambda_function.lambda_handler"),
		Code:    &types.FunctionCode{ZipFile: makeZip(t, zipEntry{name: "lambda_function.py", body: meanHandler})}}
	for _, m := range mutate {
		m(in)
	}
	out, err := c.CreateFunction(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	waitActive(t, c, name)
	return out
}

func waitActive(t *testing.T, c *lambda.Client, name string) {
	t.Helper()
	w := lambda.NewFunctionActiveV2Waiter(c, func(o *lambda.FunctionActiveV2WaiterOptions) {
		o.MinDelay = 10 * time.Millisecond
		o.MaxDelay = 100 * time.Millisecond
	})
	if err := w.Wait(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String(name)}, 30*time.Second); err != nil {
		t.Fatalf("function-active waiter: %v", err)
	}
}

func waitUpdated(t *testing.T, c *lambda.Client, name string) {
	t.Helper()
	w := lambda.NewFunctionUpdatedV2Waiter(c, func(o *lambda.FunctionUpdatedV2WaiterOptions) {
		o.MinDelay = 10 * time.Millisecond
		o.MaxDelay = 100 * time.Millisecond
	})
	if err := w.Wait(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String(name)}, 30*time.Second); err != nil {
		t.Fatalf("function-updated waiter: %v", err)
	}
}

func TestLambdaCreateGetDownload(t *testing.T) {
	s := servertest.Start(t, "")
	c := lambda.NewFromConfig(s.Config(t, nil))
	ctx := context.Background()
	code := makeZip(t, zipEntry{name: "lambda_function.py", body: meanHandler})
	out, err := c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("calculate_mean"), Runtime: types.RuntimePython39,
		Role: aws.String(role), Handler: aws.String("lambda_function.lambda_handler"), Code: &types.FunctionCode{ZipFile: code},
		Environment: &types.Environment{Variables: map[string]string{"MODE": "test"}}, Tags: map[string]string{"team": "ds"}})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(code)
	acct := s.Identity().Account().ID
	if out.State != types.StatePending || *out.CodeSha256 != base64.StdEncoding.EncodeToString(sum[:]) || out.CodeSize != int64(len(code)) ||
		*out.FunctionArn != "arn:aws:lambda:us-east-1:"+acct+":function:calculate_mean" || *out.Version != "$LATEST" ||
		*out.Timeout != 3 || *out.MemorySize != 128 || out.EphemeralStorage == nil || *out.EphemeralStorage.Size != 512 ||
		out.PackageType != types.PackageTypeZip || len(out.Architectures) != 1 || out.Architectures[0] != types.ArchitectureX8664 {
		t.Fatalf("CreateFunction returned %+v", out)
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$`).MatchString(*out.LastModified) {
		t.Fatalf("LastModified %q is not in Lambda's format", *out.LastModified)
	}
	waitActive(t, c, "calculate_mean")
	got, err := c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("calculate_mean")})
	if err != nil {
		t.Fatal(err)
	}
	if got.Configuration.State != types.StateActive || got.Configuration.LastUpdateStatus != types.LastUpdateStatusSuccessful ||
		got.Tags["team"] != "ds" || got.Configuration.Environment.Variables["MODE"] != "test" {
		t.Fatalf("GetFunction: %+v", got.Configuration)
	}
	// Code.Location is a presigned URL that downloads the zip with no credentials.
	resp, err := http.Get(*got.Code.Location)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, code) {
		t.Fatalf("Code.Location %s: %d, %d bytes", *got.Code.Location, resp.StatusCode, len(body))
	}
	// Tampering with the URL breaks it.
	resp, _ = http.Get(strings.Replace(*got.Code.Location, "X-Amz-Signature=", "X-Amz-Signature=0", 1))
	if resp.StatusCode != 403 {
		t.Fatalf("tampered Code.Location: %d", resp.StatusCode)
	}
	// Every way of naming the function works.
	for _, name := range []string{"calculate_mean", acct + ":function:calculate_mean", *out.FunctionArn, "calculate_mean:$LATEST"} {
		if _, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(name)}); err != nil {
			t.Fatalf("GetFunctionConfiguration(%s): %v", name, err)
		}
	}
	_, err = c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("nope")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
	_, err = c.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("arn:aws:lambda:us-east-1:000000000000:function:calculate_mean")})
	wantAPIError(t, err, "ResourceNotFoundException", 404)
	_, err = c.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("calculate_mean"), Runtime: types.RuntimePython312,
		Role: aws.String(role), Handler: aws.String("x.y"), Code: &types.FunctionCode{ZipFile: code}})
	wantAPIError(t, err, "ResourceConflictException", 409)
}

func TestLambdaBadInputChangesNothing(t *testing.T) {
	s := servertest.Start(t, "")
	c := lambda.NewFromConfig(s.Config(t, nil))
	ctx := context.Background()
	good := makeZip(t, zipEntry{name: "lambda_function.py", body: meanHandler})
	base := func() *lambda.CreateFunctionInput {
		return &lambda.CreateFunctionInput{FunctionName: aws.String("f"), Runtime: types.RuntimePython311, Role: aws.String(role),
			Handler: aws.String("lambda_function.lambda_handler"), Code: &types.FunctionCode{ZipFile: good}}
	}
	tests := []struct {
		name   string
		mutate func(*lambda.CreateFunctionInput)
		code   string
		status int
	}{
		{"not a zip", func(in *lambda.CreateFunctionInput) { in.Code.ZipFile = []byte("hello") }, "InvalidParameterValueException", 400},
		{"absolute path", func(in *lambda.CreateFunctionInput) {
			in.Code.ZipFile = makeZip(t, zipEntry{name: "/etc/passwd", body: "x"})
		}, "InvalidParameterValueException", 400},
		{"dot dot", func(in *lambda.CreateFunctionInput) {
			in.Code.ZipFile = makeZip(t, zipEntry{name: "a/../../escape.py", body: "x"})
		}, "InvalidParameterValueException", 400},
		{"escaping symlink", func(in *lambda.CreateFunctionInput) {
			in.Code.ZipFile = makeZip(t, zipEntry{name: "link", body: "../../etc/shadow", mode: os.ModeSymlink | 0o777})
		}, "InvalidParameterValueException", 400},
		{"absolute symlink", func(in *lambda.CreateFunctionInput) {
			in.Code.ZipFile = makeZip(t, zipEntry{name: "link", body: "/etc/shadow", mode: os.ModeSymlink | 0o777})
		}, "InvalidParameterValueException", 400},
		{"deprecated runtime", func(in *lambda.CreateFunctionInput) { in.Runtime = types.RuntimePython27 }, "InvalidParameterValueException", 400},
		{"unknown runtime", func(in *lambda.CreateFunctionInput) { in.Runtime = "cobol85" }, "ValidationException", 400},
		{"memory too small", func(in *lambda.CreateFunctionInput) { in.MemorySize = aws.Int32(64) }, "ValidationException", 400},
		{"memory too big", func(in *lambda.CreateFunctionInput) { in.MemorySize = aws.Int32(10241) }, "ValidationException", 400},
		{"timeout too long", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(901) }, "InvalidParameterValueException", 400},
		{"timeout zero", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(0) }, "ValidationException", 400},
		{"bad name", func(in *lambda.CreateFunctionInput) { in.FunctionName = aws.String("my function") }, "ValidationException", 400},
		{"long name", func(in *lambda.CreateFunctionInput) { in.FunctionName = aws.String(strings.Repeat("f", 65)) }, "ValidationException", 400},
		{"bad handler", func(in *lambda.CreateFunctionInput) { in.Handler = aws.String("lambda function.handler") }, "ValidationException", 400},
		{"bad role", func(in *lambda.CreateFunctionInput) { in.Role = aws.String("admin") }, "ValidationException", 400},
		{"reserved env", func(in *lambda.CreateFunctionInput) {
			in.Environment = &types.Environment{Variables: map[string]string{"AWS_REGION": "x"}}
		}, "InvalidParameterValueException", 400},
		{"bad env name", func(in *lambda.CreateFunctionInput) {
			in.Environment = &types.Environment{Variables: map[string]string{"1X": "x"}}
		}, "ValidationException", 400},
		{"ephemeral too small", func(in *lambda.CreateFunctionInput) {
			in.EphemeralStorage = &types.EphemeralStorage{Size: aws.Int32(100)}
		}, "ValidationException", 400},
		{"image package", func(in *lambda.CreateFunctionInput) { in.PackageType = types.PackageTypeImage }, "InvalidParameterValueException", 400},
		{"no runtime", func(in *lambda.CreateFunctionInput) { in.Runtime = "" }, "InvalidParameterValueException", 400},
		{"two architectures", func(in *lambda.CreateFunctionInput) {
			in.Architectures = []types.Architecture{types.ArchitectureX8664, types.ArchitectureArm64}
		}, "ValidationException", 400},
		{"reserved tag", func(in *lambda.CreateFunctionInput) { in.Tags = map[string]string{"aws:x": "y"} }, "InvalidParameterValueException", 400},
		{"over 250 MB unzipped", func(in *lambda.CreateFunctionInput) { in.Code.ZipFile = zeroZip(t, 251<<20) }, "InvalidParameterValueException", 400},
		{"over 50 MB zipped", func(in *lambda.CreateFunctionInput) { in.Code.ZipFile = randomZip(t, 51<<20) }, "RequestEntityTooLargeException", 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			tc.mutate(in)
			_, err := c.CreateFunction(ctx, in)
			wantAPIError(t, err, tc.code, tc.status)
		})
	}
	// A body that is not JSON.
	r := s.Do(t, servertest.Raw{Service: "lambda", Path: "/2015-03-31/functions", Body: "{nope", ContentType: "application/json"})
	if r.Status != 400 || r.Header.Get("X-Amzn-Errortype") != "InvalidRequestContentException" {
		t.Fatalf("malformed JSON: %d %v %s", r.Status, r.Header, r.Body)
	}
	list, err := c.ListFunctions(ctx, &lambda.ListFunctionsInput{})
	if err != nil || len(list.Functions) != 0 {
		t.Fatalf("refused creates left functions: %+v %v", list, err)
	}
	entries, _ := os.ReadDir(s.DataDir + "/lambda/code")
	for _, e := range entries {
		t.Errorf("refused creates left code %s", e.Name())
	}
}

// zeroZip is a small zip that unpacks to n bytes of zeros.
func zeroZip(t *testing.T, n int) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("zeros.bin")
	chunk := make([]byte, 1<<20)
	for written := 0; written < n; written += len(chunk) {
		w.Write(chunk)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// randomZip is a zip of n incompressible bytes (stored), so the zip is larger than n.
func randomZip(t *testing.T, n int) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "random.bin", Method: zip.Store})
	b := make([]byte, n)
	rand.Read(b)
	w.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

package runtimes

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------------------------
// Node.js.

func nodeArgv(t *testing.T) []string {
	node := interpreter(t, "node", "-e", "0")
	return []string{node, filepath.Join(installed(t), "node", "bootstrap.js")}
}

const logLine = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t`

func TestNode(t *testing.T) {
	argv := nodeArgv(t)

	t.Run("async, warm", func(t *testing.T) {
		api := newRuntimeAPI(t)
		code := `exports.handler = async (event) => {
  const mean = event.nums.reduce((a, b) => a + b, 0) / event.nums.length;
  return { statusCode: 200, body: mean };
};
`
		start(t, api, argv, function{"index.js": code}, "index.handler")
		wantResponse(t, api.invoke(t, invocation{Payload: `{"nums":[1,2,3,4,5]}`}), `{"statusCode":200,"body":3}`)
		wantResponse(t, api.invoke(t, invocation{Payload: `{"nums":[1,2]}`}), `{"statusCode":200,"body":1.5}`)
	})

	t.Run("context and console", func(t *testing.T) {
		api := newRuntimeAPI(t)
		code := `export const handler = async (event, context) => {
  console.log('hello %s', event.who);
  console.warn('two\nlines');
  console.error(new Error('logged'));
  return {
    awsRequestId: context.awsRequestId,
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    memoryLimitInMB: context.memoryLimitInMB,
    invokedFunctionArn: context.invokedFunctionArn,
    logGroupName: context.logGroupName,
    logStreamName: context.logStreamName,
    remaining: context.getRemainingTimeInMillis(),
    waits: context.callbackWaitsForEmptyEventLoop,
    identity: context.identity,
    clientContext: context.clientContext,
    trace: process.env._X_AMZN_TRACE_ID,
  };
};
`
		p := start(t, api, argv, function{"index.mjs": code}, "index.handler")
		inv := invocation{
			ID:            "c0ffee00-1111-4222-8333-444455556666",
			Payload:       `{"who":"world"}`,
			Deadline:      time.Now().Add(2500 * time.Millisecond),
			ARN:           "arn:aws:lambda:us-east-1:000000000000:function:fn",
			TraceID:       "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
			ClientContext: `{"custom":{"k":"v"}}`,
			Cognito:       `{"cognitoIdentityId":"id","cognitoIdentityPoolId":"pool"}`,
		}
		o := api.invoke(t, inv)
		if o.Kind != "response" {
			t.Fatalf("got %s %q", o.Kind, o.Body)
		}
		m := decode(t, o.Body)
		wantString(t, m, "awsRequestId", inv.ID)
		wantString(t, m, "functionName", "fn")
		wantString(t, m, "functionVersion", "$LATEST")
		wantString(t, m, "memoryLimitInMB", "128")
		wantString(t, m, "invokedFunctionArn", inv.ARN)
		wantString(t, m, "logGroupName", "/aws/lambda/fn")
		wantString(t, m, "logStreamName", "2026/11/25/[$LATEST]0123456789abcdef0123456789abcdef")
		wantString(t, m, "trace", inv.TraceID)
		if r, _ := m["remaining"].(float64); r <= 1500 || r > 2500 {
			t.Errorf("getRemainingTimeInMillis() = %v, want about 2500", m["remaining"])
		}
		if m["waits"] != true {
			t.Errorf("callbackWaitsForEmptyEventLoop = %v", m["waits"])
		}
		if id, _ := m["identity"].(map[string]any); id["cognitoIdentityId"] != "id" {
			t.Errorf("identity = %v", m["identity"])
		}
		if cc, _ := m["clientContext"].(map[string]any); cc["custom"] == nil {
			t.Errorf("clientContext = %v", m["clientContext"])
		}
		p.waitOutput(t, `(?m)^`+logLine+inv.ID+`\tINFO\thello world\n`)
		p.waitOutput(t, `(?m)^`+logLine+inv.ID+`\tWARN\ttwo\rlines\n`)
		p.waitOutput(t, `(?m)^`+logLine+inv.ID+`\tERROR\tError: logged\r    at `)
	})

	t.Run("callback", func(t *testing.T) {
		api := newRuntimeAPI(t)
		code := `exports.handler = (event, context, callback) => {
  if (event.eager) context.callbackWaitsForEmptyEventLoop = false;
  setTimeout(() => console.log('timer done'), 500);
  callback(null, { got: event.n });
};
`
		p := start(t, api, argv, function{"index.js": code}, "index.handler")
		// The result waits for the event loop to empty (the timer), as on AWS.
		t0 := time.Now()
		wantResponse(t, api.invoke(t, invocation{Payload: `{"n":1}`}), `{"got":1}`)
		if d := time.Since(t0); d < 500*time.Millisecond {
			t.Errorf("the callback's result came after %v, before the event loop was empty", d)
		}
		p.waitOutput(t, "timer done")
		// With callbackWaitsForEmptyEventLoop = false it goes at once.
		t0 = time.Now()
		wantResponse(t, api.invoke(t, invocation{Payload: `{"n":2,"eager":true}`}), `{"got":2}`)
		if d := time.Since(t0); d > 400*time.Millisecond {
			t.Errorf("the eager callback took %v", d)
		}
	})

	t.Run("callback error and sync handlers", func(t *testing.T) {
		api := newRuntimeAPI(t)
		code := `exports.handler = (event, context, callback) => {
  if (event.cb) return callback(new RangeError('out of range'));
  if (event.throw) throw new Error('sync throw');
  if (event.succeed) return context.succeed('ok');
  return 'ignored';
};
`
		start(t, api, argv, function{"index.cjs": code}, "index.handler")
		o := api.invoke(t, invocation{Payload: `{"cb":true}`})
		if o.Kind != "error" || o.ErrorType != "RangeError" {
			t.Fatalf("got %s %q", o.Kind, o.Body)
		}
		o = api.invoke(t, invocation{Payload: `{"throw":true}`})
		if m := decode(t, o.Body); o.Kind != "error" || m["errorMessage"] != "sync throw" {
			t.Fatalf("got %s %q", o.Kind, o.Body)
		}
		wantResponse(t, api.invoke(t, invocation{Payload: `{"succeed":true}`}), `"ok"`)
		// A synchronous handler's return value counts for nothing; null once the loop is empty.
		wantResponse(t, api.invoke(t, invocation{Payload: `{}`}), `null`)
	})

	t.Run("thrown error", func(t *testing.T) {
		api := newRuntimeAPI(t)
		code := `exports.handler = async () => {
  throw new TypeError('bad thing');
};
`
		p := start(t, api, argv, function{"index.js": code}, "index.handler")
		o := api.invoke(t, invocation{ID: "e0000000-0000-4000-8000-000000000002", Payload: `{}`})
		if o.Kind != "error" || o.ErrorType != "TypeError" {
			t.Fatalf("got %s %q, error type %q", o.Kind, o.Body, o.ErrorType)
		}
		m := decode(t, o.Body)
		wantString(t, m, "errorType", "TypeError")
		wantString(t, m, "errorMessage", "bad thing")
		trace, _ := m["trace"].([]any)
		if len(trace) < 2 || trace[0] != "TypeError: bad thing" || !strings.Contains(trace[1].(string), filepath.Join(p.cmd.Dir, "index.js")+":2:") {
			t.Errorf("trace = %q", trace)
		}
		if keys := slices.Sorted(mapsKeys(m)); !slices.Equal(keys, []string{"errorMessage", "errorType", "trace"}) {
			t.Errorf("error keys %v", keys)
		}
		p.waitOutput(t, `(?m)^`+logLine+`e0000000-0000-4000-8000-000000000002\tERROR\tInvoke Error \t\{"errorType":"TypeError","errorMessage":"bad thing","stack":\["TypeError: bad thing",`)
		// The process lives on.
		if o := api.invoke(t, invocation{Payload: `{}`}); o.Kind != "error" {
			t.Errorf("second invocation: %s %q", o.Kind, o.Body)
		}
	})

	t.Run("loading", func(t *testing.T) {
		cases := []struct {
			name, handler string
			code          function
			want          string
		}{
			{"directory and nested export", "src/app.lib.handler", function{"src/app.js": "exports.lib = { handler: async () => 'nested' };\n"}, `"nested"`},
			{"type module", "index.handler", function{"package.json": `{"type":"module"}`, "index.js": "export const handler = async () => 'esm js';\n"}, `"esm js"`},
			{"cjs", "index.handler", function{"index.cjs": "module.exports.handler = async () => 'cjs';\n"}, `"cjs"`},
			{"node_modules", "lib.handler", function{"node_modules/lib/index.js": "exports.handler = async () => 'from node_modules';\n"}, `"from node_modules"`},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				api := newRuntimeAPI(t)
				start(t, api, argv, c.code, c.handler)
				wantResponse(t, api.invoke(t, invocation{Payload: `{}`}), c.want)
			})
		}
	})

	t.Run("unserialisable result", func(t *testing.T) {
		api := newRuntimeAPI(t)
		start(t, api, argv, function{"index.js": "exports.handler = async () => { const a = {}; a.a = a; return a; };\n"}, "index.handler")
		o := api.invoke(t, invocation{Payload: `{}`})
		if m := decode(t, o.Body); o.Kind != "error" || m["errorType"] != "Error" || m["errorMessage"] != "Unable to stringify response body" {
			t.Fatalf("got %s %q", o.Kind, o.Body)
		}
	})

	t.Run("uncaught exception", func(t *testing.T) {
		api := newRuntimeAPI(t)
		code := "exports.handler = (event, context, callback) => { setTimeout(() => { throw new Error('later'); }, 1); };\n"
		p := start(t, api, argv, function{"index.js": code}, "index.handler")
		o := api.invoke(t, invocation{Payload: `{}`})
		if m := decode(t, o.Body); o.Kind != "error" || m["errorMessage"] != "later" {
			t.Fatalf("got %s %q", o.Kind, o.Body)
		}
		if code := p.exitCode(t); code != 129 {
			t.Errorf("exit status %d, want 129", code)
		}
	})

	t.Run("unhandled rejection", func(t *testing.T) {
		api := newRuntimeAPI(t)
		code := "exports.handler = async () => { Promise.reject(new Error('nobody waits')); await new Promise(r => setTimeout(r, 50)); return 1; };\n"
		p := start(t, api, argv, function{"index.js": code}, "index.handler")
		o := api.invoke(t, invocation{Payload: `{}`})
		m := decode(t, o.Body)
		if o.Kind != "error" || m["errorType"] != "Runtime.UnhandledPromiseRejection" || m["errorMessage"] != "Error: nobody waits" {
			t.Fatalf("got %s %q", o.Kind, o.Body)
		}
		if code := p.exitCode(t); code != 128 {
			t.Errorf("exit status %d, want 128", code)
		}
	})

	initErrors := []struct {
		name, handler string
		code          function
		errorType     string
		message       *regexp.Regexp
	}{
		{"import error", "index.handler", nil, "Runtime.ImportModuleError",
			regexp.MustCompile(`^Error: Cannot find module 'index'\nRequire stack:\n- .*/node/bootstrap\.js$`)},
		{"handler not found", "index.nope", function{"index.js": "exports.handler = async () => 1;\n"}, "Runtime.HandlerNotFound",
			regexp.MustCompile(`^index\.nope is undefined or not exported$`)},
		{"not a function", "index.value", function{"index.js": "exports.value = 1;\n"}, "Runtime.HandlerNotFound",
			regexp.MustCompile(`^index\.value is not a function$`)},
		{"malformed handler", "index", function{"index.js": "exports.handler = async () => 1;\n"}, "Runtime.MalformedHandlerName",
			regexp.MustCompile(`^Bad handler$`)},
		{"relative path", "../index.handler", nil, "Runtime.MalformedHandlerName",
			regexp.MustCompile(`^'\.\./index\.handler' is not a valid handler name\. Use absolute paths`)},
		{"syntax error", "index.handler", function{"index.js": "exports.handler = async () => {\n"}, "Runtime.UserCodeSyntaxError",
			regexp.MustCompile(`^SyntaxError: `)},
		{"esm import error", "index.handler", function{"index.mjs": "import x from 'nowhere';\nexport const handler = async () => x;\n"}, "Error",
			regexp.MustCompile(`Cannot find package 'nowhere'`)},
	}
	for _, c := range initErrors {
		t.Run(c.name, func(t *testing.T) {
			api := newRuntimeAPI(t)
			p := start(t, api, argv, c.code, c.handler)
			o := api.wait(t)
			if o.Kind != "init" || o.ErrorType != c.errorType {
				t.Fatalf("got %s %q, error type %q; want init error %s", o.Kind, o.Body, o.ErrorType, c.errorType)
			}
			m := decode(t, o.Body)
			wantString(t, m, "errorType", c.errorType)
			msg, _ := m["errorMessage"].(string)
			if !c.message.MatchString(msg) {
				t.Errorf("errorMessage %q does not match %s", msg, c.message)
			}
			if trace, _ := m["trace"].([]any); len(trace) == 0 || !strings.HasPrefix(trace[0].(string), c.errorType) {
				t.Errorf("trace = %q", m["trace"])
			}
			if code := p.exitCode(t); code != 129 {
				t.Errorf("exit status %d, want 129", code)
			}
			p.waitOutput(t, `(?m)^`+logLine+`undefined\tERROR\tUncaught Exception \t\{"errorType":"`+regexp.QuoteMeta(c.errorType)+`"`)
		})
	}
}

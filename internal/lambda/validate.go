package lambda

import (
	"regexp"
	"runtime"
	"sort"
	"strings"
)

// Runtimes nubis runs, by family. Every Python identifier runs on the Python 3 of the runtime image,
// every Node.js identifier on its Node.js; provided runtimes run the zip's bootstrap.
var supportedRuntimes = map[string]string{
	"python3.8": "python", "python3.9": "python", "python3.10": "python", "python3.11": "python",
	"python3.12": "python", "python3.13": "python",
	"nodejs16.x": "node", "nodejs18.x": "node", "nodejs20.x": "node", "nodejs22.x": "node",
	"provided": "provided", "provided.al2": "provided", "provided.al2023": "provided",
}

// deprecatedRuntimes are identifiers AWS knows but no longer lets functions be created with.
var deprecatedRuntimes = map[string]bool{
	"nodejs": true, "nodejs4.3": true, "nodejs6.10": true, "nodejs8.10": true, "nodejs10.x": true,
	"nodejs12.x": true, "nodejs14.x": true, "python2.7": true, "python3.6": true, "python3.7": true,
	"java8": true, "dotnetcore1.0": true, "dotnetcore2.0": true, "dotnetcore2.1": true,
	"dotnetcore3.1": true, "ruby2.5": true, "ruby2.7": true, "go1.x": true, "nodejs4.3-edge": true,
}

// otherRuntimes are AWS runtimes that nubis does not run (yet).
var otherRuntimes = map[string]bool{
	"java8.al2": true, "java11": true, "java17": true, "java21": true, "dotnet6": true, "dotnet8": true,
	"ruby3.2": true, "ruby3.3": true,
}

func runtimeList() string {
	var names []string
	for n := range supportedRuntimes {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func validateRuntime(rt string) error {
	switch {
	case supportedRuntimes[rt] != "":
		return nil
	case deprecatedRuntimes[rt]:
		return invalidParam("The runtime parameter of %s is no longer supported for creating or updating AWS Lambda functions. We recommend you use a supported runtime while creating or updating functions.", rt)
	case otherRuntimes[rt]:
		return invalidParam("The runtime %s is not supported by nubis yet. Supported runtimes: %s.", rt, runtimeList())
	}
	return validation(rt, "runtime", "Member must satisfy enum value set: ["+runtimeList()+"]")
}

var (
	functionNamePattern = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,64}$`)
	handlerPattern      = regexp.MustCompile(`^[^\s]+$`)
	rolePattern         = regexp.MustCompile(`^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$`)
	envNamePattern      = regexp.MustCompile(`^[a-zA-Z]([a-zA-Z0-9_])+$`)
	aliasPattern        = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,128}$`)
	digits              = regexp.MustCompile(`^[0-9]+$`)
)

func validateFunctionName(name string) error {
	if !functionNamePattern.MatchString(name) {
		if len(name) > 64 {
			return validation(name, "functionName", "Member must have length less than or equal to 64")
		}
		return validation(name, "functionName", `Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?`)
	}
	return nil
}

func validateHandler(h string) error {
	if len(h) > 128 {
		return validation(h, "handler", "Member must have length less than or equal to 128")
	}
	if !handlerPattern.MatchString(h) {
		return validation(h, "handler", `Member must satisfy regular expression pattern: [^\s]+`)
	}
	return nil
}

func validateRole(role string) error {
	if !rolePattern.MatchString(role) {
		return validation(role, "role", `Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+`)
	}
	return nil
}

// reservedEnv are the variables Lambda sets itself and does not let functions override.
var reservedEnv = []string{"_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION",
	"AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
	"AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME",
	"AWS_LAMBDA_LOG_STREAM_NAME", "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
	"AWS_SESSION_TOKEN", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"}

func validateEnvironment(env *Environment) error {
	if env == nil {
		return nil
	}
	size := 0
	var reserved []string
	for k, v := range env.Variables {
		if !envNamePattern.MatchString(k) {
			return validation(k, "environment.variables", `Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+`)
		}
		for _, r := range reservedEnv {
			if k == r {
				reserved = append(reserved, k)
			}
		}
		size += len(k) + len(v)
	}
	if len(reserved) > 0 {
		sort.Strings(reserved)
		return invalidParam("Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: %s", strings.Join(reserved, ", "))
	}
	if size > 4096 {
		return invalidParam("Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: %d bytes", size)
	}
	return nil
}

func validateMemory(mb int) error {
	if mb < 128 {
		return validation(mb, "memorySize", "Member must have value greater than or equal to 128")
	}
	if mb > 10240 {
		return validation(mb, "memorySize", "Member must have value less than or equal to 10240")
	}
	return nil
}

func validateTimeout(s int) error {
	if s < 1 {
		return validation(s, "timeout", "Member must have value greater than or equal to 1")
	}
	if s > 900 {
		return invalidParam("Timeout value must be less than or equal to 900 seconds. Value provided: %d", s)
	}
	return nil
}

func validateEphemeral(mb int) error {
	if mb < 512 || mb > 10240 {
		return validation(mb, "ephemeralStorage.size", "Member must have value between 512 and 10240")
	}
	return nil
}

func validateDescription(d string) error {
	if len(d) > 256 {
		return validation(d, "description", "Member must have length less than or equal to 256")
	}
	return nil
}

// hostArch is the Lambda architecture this machine runs natively.
func hostArch() string {
	if runtime.GOARCH == "arm64" {
		return "arm64"
	}
	return "x86_64"
}

func validateArchitectures(archs []string) error {
	if archs == nil {
		return nil
	}
	if len(archs) != 1 {
		return validation(archs, "architectures", "Member must have length less than or equal to 1")
	}
	switch archs[0] {
	case hostArch():
		return nil
	case "x86_64", "arm64":
		return invalidParam("This nubis host runs %s functions; architecture %s is not available on it.", hostArch(), archs[0])
	}
	return validation(archs, "architectures", "Member must satisfy enum value set: [x86_64, arm64]")
}

func validateAliasName(name string) error {
	if !aliasPattern.MatchString(name) || digits.MatchString(name) {
		return validation(name, "name", `Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)`)
	}
	return nil
}

func validateTags(tags map[string]string) error {
	if len(tags) > 50 {
		return invalidParam("Number of tags exceeds resource tag limit of 50.")
	}
	for k, v := range tags {
		if k == "" || len(k) > 128 {
			return validation(k, "tags", "Map keys must have length between 1 and 128")
		}
		if len(v) > 256 {
			return validation(v, "tags", "Map values must have length less than or equal to 256")
		}
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return invalidParam("Tag keys starting with 'aws:' are reserved for AWS use: %s", k)
		}
	}
	return nil
}

package execute

import (
	"reflect"
	"testing"

	"github.com/nubis/nubis/internal/apigw"
)

func TestEvaluate(t *testing.T) {
	arn := "arn:aws:execute-api:us-east-1:123456789012:abc123/$default/GET/items/7"
	simple, iam := apigw.Authorizer{SimpleResponses: true}, apigw.Authorizer{}
	for _, tc := range []struct {
		name    string
		a       apigw.Authorizer
		answer  string
		allowed bool
		bad     bool
	}{
		{"simple yes", simple, `{"isAuthorized": true, "context": {"a": 1}}`, true, false},
		{"simple no", simple, `{"isAuthorized": false}`, false, false},
		{"simple without isAuthorized", simple, `{"context": {}}`, false, true},
		{"allow the route", iam, `{"principalId": "u", "policyDocument": {"Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "` + arn + `"}]}}`, true, false},
		{"allow by wildcard and lists", iam, `{"policyDocument": {"Statement": [{"Action": ["s3:GetObject", "execute-api:*"], "Effect": "Allow", "Resource": ["arn:aws:execute-api:us-east-1:123456789012:abc123/*/GET/*"]}]}}`, true, false},
		{"allow another route", iam, `{"policyDocument": {"Statement": {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc123/$default/POST/*"}}}`, false, false},
		{"deny wins", iam, `{"policyDocument": {"Statement": [{"Action": "*", "Effect": "Allow", "Resource": "*"}, {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": "` + arn + `"}]}}`, false, false},
		{"no policy", iam, `{"principalId": "u"}`, false, true},
		{"names are exact", simple, `{"IsAuthorized": true}`, false, true},
		{"policy names are exact", iam, `{"policydocument": {"Statement": [{"Action": "*", "Effect": "Allow", "Resource": "*"}]}}`, false, true},
		{"NotResource is not ignored", iam, `{"policyDocument": {"Statement": [{"Action": "*", "Effect": "Allow", "Resource": "*"}, {"Action": "*", "Effect": "Deny", "NotResource": "x"}]}}`, false, true},
		{"not JSON", iam, `nope`, false, true},
	} {
		allowed, _, _, err := evaluate(tc.a, []byte(tc.answer), arn)
		if allowed != tc.allowed || (err != nil) != tc.bad {
			t.Errorf("%s: allowed %v err %v", tc.name, allowed, err)
		}
	}
}

func TestAuthorizerForEvent(t *testing.T) {
	ctx := map[string]any{"user": "alice"}
	if got := authorizerForEvent("2.0", ctx, "p"); !reflect.DeepEqual(got, map[string]any{"lambda": ctx}) {
		t.Errorf("2.0: %v", got)
	}
	want := map[string]any{"user": "alice", "principalId": "p", "integrationLatency": 0}
	if got := authorizerForEvent("1.0", ctx, "p"); !reflect.DeepEqual(got, want) {
		t.Errorf("1.0: %v", got)
	}
}

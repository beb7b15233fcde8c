package lambda

import "testing"

func TestPolicyAllows(t *testing.T) {
	apigw := func(cond string) Statement {
		st := Statement{Sid: "s", Effect: "Allow", Principal: map[string]string{"Service": "apigateway.amazonaws.com"},
			Action: "lambda:InvokeFunction"}
		if cond != "" {
			st.Condition = map[string]map[string]string{"ArnLike": {"AWS:SourceArn": cond}}
		}
		return st
	}
	src := "arn:aws:execute-api:us-east-1:123456789012:abc123/default/GET/calculate_mean"
	tests := []struct {
		name string
		p    policy
		want bool
	}{
		{"no policy", policy{}, false},
		{"any source", policy{Statements: []Statement{apigw("")}}, true},
		{"wildcard source", policy{Statements: []Statement{apigw("arn:aws:execute-api:us-east-1:123456789012:abc123/*/*/calculate_mean")}}, true},
		{"other api", policy{Statements: []Statement{apigw("arn:aws:execute-api:us-east-1:123456789012:zzz999/*/*/calculate_mean")}}, false},
		{"question mark", policy{Statements: []Statement{apigw("arn:aws:execute-api:us-east-1:123456789012:abc12?/*")}}, true},
		{"regexp characters are literal", policy{Statements: []Statement{apigw("arn:aws:execute-api:us-east-1:123456789012:abc123/.*")}}, false},
		{"other principal", policy{Statements: []Statement{{Sid: "s", Effect: "Allow", Principal: map[string]string{"Service": "s3.amazonaws.com"}, Action: "lambda:InvokeFunction"}}}, false},
		{"other action", policy{Statements: []Statement{{Sid: "s", Effect: "Allow", Principal: map[string]string{"Service": "apigateway.amazonaws.com"}, Action: "lambda:GetFunction"}}}, false},
		{"lambda:*", policy{Statements: []Statement{{Sid: "s", Effect: "Allow", Principal: map[string]string{"Service": "apigateway.amazonaws.com"}, Action: "lambda:*"}}}, true},
	}
	for _, tc := range tests {
		if got := tc.p.allows("apigateway.amazonaws.com", src); got != tc.want {
			t.Errorf("%s: allows = %v, want %v", tc.name, got, tc.want)
		}
	}
}

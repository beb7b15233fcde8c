// Package ec2 is nubis's Amazon EC2 service: the EC2 Query API (instances, images, key pairs,
// tags, instance types, regions) and the state behind it, kept in the store under
// "ec2/<account>/<region>/". Instances run on a machine.Driver (fleet.go); each one's metadata
// service is served from here (package imds).
package ec2

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// APIVersion is the EC2 API version nubis speaks, and XMLNamespace the namespace of its responses.
const (
	APIVersion   = "2016-11-15"
	XMLNamespace = "http://ec2.amazonaws.com/doc/2016-11-15/"
)

// Service holds EC2's state and answers its API.
type Service struct {
	store  store.Store
	region string
	log    *slog.Logger
	now    func() time.Time

	// Instances: fleet runs them (nil when this host cannot, noFleet says why).
	fleet         *fleet
	noFleet       string
	maxInstances  int
	terminatedTTL time.Duration
	zoneNames     []string
	// pushed are the keys EC2 Instance Connect pushed (instanceconnect.go).
	pushed pushedKeys
}

// New returns the EC2 service for region, keeping its state in st.
func New(st store.Store, region string, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: st, region: region, log: log, now: time.Now, maxInstances: 32,
		terminatedTTL: time.Hour, noFleet: "instances need nubis to run as root with runc installed"}
}

// API returns the EC2 Query API for the server to route to.
func (s *Service) API() awsproto.Service {
	return &awsproto.QueryService{
		Name:      "ec2",
		Version:   APIVersion,
		Namespace: XMLNamespace,
		Flavor:    awsproto.FlavorEC2,
		Log:       s.log,
		Actions: map[string]awsproto.QueryHandler{
			"CreateKeyPair":    s.createKeyPair,
			"ImportKeyPair":    s.importKeyPair,
			"DescribeKeyPairs": s.describeKeyPairs,
			"DeleteKeyPair":    s.deleteKeyPair,
			"CreateTags":       s.createTags,
			"DeleteTags":       s.deleteTags,
			"DescribeTags":     s.describeTags,

			"RunInstances":                    s.runInstances,
			"DescribeInstances":               s.describeInstances,
			"DescribeInstanceStatus":          s.describeInstanceStatus,
			"StartInstances":                  s.startInstances,
			"StopInstances":                   s.stopInstances,
			"RebootInstances":                 s.rebootInstances,
			"TerminateInstances":              s.terminateInstances,
			"GetConsoleOutput":                s.getConsoleOutput,
			"DescribeInstanceAttribute":       s.describeInstanceAttribute,
			"ModifyInstanceAttribute":         s.modifyInstanceAttribute,
			"ModifyInstanceMetadataOptions":   s.modifyInstanceMetadataOptions,
			"DescribeImages":                  s.describeImages,
			"CreateImage":                     s.createImage,
			"CopyImage":                       s.copyImage,
			"RegisterImage":                   s.registerImage,
			"DeregisterImage":                 s.deregisterImage,
			"DescribeVpcs":                    s.describeVpcs,
			"CreateVpc":                       s.createVpc,
			"CreateLaunchTemplate":            s.createLaunchTemplate,
			"CreateLaunchTemplateVersion":     s.createLaunchTemplateVersion,
			"DescribeLaunchTemplates":         s.describeLaunchTemplates,
			"DescribeLaunchTemplateVersions":  s.describeLaunchTemplateVersions,
			"ModifyLaunchTemplate":            s.modifyLaunchTemplate,
			"DeleteLaunchTemplate":            s.deleteLaunchTemplate,
			"DeleteLaunchTemplateVersions":    s.deleteLaunchTemplateVersions,
			"DeleteVpc":                       s.deleteVpc,
			"CreateSubnet":                    s.createSubnet,
			"DeleteSubnet":                    s.deleteSubnet,
			"DescribeNetworkInterfaces":       s.describeNetworkInterfaces,
			"CreateVolume":                    s.createVolume,
			"DescribeVolumes":                 s.describeVolumes,
			"AttachVolume":                    s.attachVolume,
			"DetachVolume":                    s.detachVolume,
			"DeleteVolume":                    s.deleteVolume,
			"ModifyVolume":                    s.modifyVolume,
			"CreateSnapshot":                  s.createSnapshot,
			"DescribeSnapshots":               s.describeSnapshots,
			"DeleteSnapshot":                  s.deleteSnapshot,
			"DescribeSubnets":                 s.describeSubnets,
			"DescribeSecurityGroups":          s.describeSecurityGroups,
			"CreateSecurityGroup":             s.createSecurityGroup,
			"DeleteSecurityGroup":             s.deleteSecurityGroup,
			"AuthorizeSecurityGroupIngress":   s.authorizeIngress,
			"AuthorizeSecurityGroupEgress":    s.authorizeEgress,
			"RevokeSecurityGroupIngress":      s.revokeIngress,
			"RevokeSecurityGroupEgress":       s.revokeEgress,
			"DescribeSecurityGroupRules":      s.describeSecurityGroupRules,
			"ModifySecurityGroupRules":        s.modifySecurityGroupRules,
			"ModifyNetworkInterfaceAttribute": s.modifyNetworkInterfaceAttribute,

			"DescribeInstanceTypes":         s.describeInstanceTypes,
			"DescribeInstanceTypeOfferings": s.describeInstanceTypeOfferings,
			"DescribeRegions":               s.describeRegions,
			"DescribeAvailabilityZones":     s.describeAvailabilityZones,
		},
	}
}

// prefix is the store key prefix of one account's EC2 state in this region.
func (s *Service) prefix(r *awsproto.Request) string {
	return "ec2/" + r.Caller.AccountID + "/" + s.region + "/"
}

// newID returns a resource id in EC2's format: the prefix ("key", "i", ...), a dash and 17 hex digits.
func newID(prefix string) string {
	b := make([]byte, 9)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)[:17]
}

// timestamp formats t as EC2 renders times: ISO 8601 in UTC with milliseconds.
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

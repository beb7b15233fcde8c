package ec2

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/image"
)

// debianOwnerID is the AWS account Debian publishes its official images from; nubis's built-in
// images are Debian's too (built from Debian packages on this machine), so they carry its owner.
const debianOwnerID = "136693071363"

// machineImage is an AMI: a root file system instances boot from.
type machineImage struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Description  string    `json:"description,omitempty"`
	OwnerID      string    `json:"ownerId"`
	Public       bool      `json:"public,omitempty"`
	Architecture string    `json:"architecture"`
	RootGiB      int       `json:"rootGiB"`
	CreationDate time.Time `json:"creationDate"`
	// State is available, or pending while an image of an instance is being made, or failed.
	State       string `json:"state,omitempty"`
	StateReason string `json:"stateReason,omitempty"`
	// Recipe builds the root of a built-in image.
	Recipe *image.Recipe `json:"-"`
	// An image of one's own: its layers (top first) over its Base image's root (a built-in
	// image's id; empty for an image registered from a whole root file system).
	Layers         []string `json:"layers,omitempty"`
	Base           string   `json:"base,omitempty"`
	SourceInstance string   `json:"sourceInstance,omitempty"`
}

func (im machineImage) state() string {
	if im.State == "" {
		return "available"
	}
	return im.State
}

// builtinImages are the images every account can launch: Debian 12 with python3, curl and sshd,
// and the same with numpy, pandas and scikit-learn. Their ids are the same everywhere.
var builtinImages = []machineImage{
	{ID: derivedID("ami", image.EC2Default.Name), Name: "debian-12-amd64-nubis",
		Description: "Debian 12 (bookworm) with python3, curl and OpenSSH; login user ec2-user (built by nubis from Debian packages)",
		OwnerID:     debianOwnerID, Public: true, Architecture: "x86_64", RootGiB: 8,
		CreationDate: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), Recipe: &image.EC2Default},
	{ID: derivedID("ami", image.EC2DataScience.Name), Name: "debian-12-amd64-datascience-nubis",
		Description: "Debian 12 (bookworm) with python3, numpy, pandas and scikit-learn; login user ec2-user (built by nubis from Debian packages)",
		OwnerID:     debianOwnerID, Public: true, Architecture: "x86_64", RootGiB: 8,
		CreationDate: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), Recipe: &image.EC2DataScience},
}

// DefaultImageID is the id of the default image (Debian 12 with python3, curl and sshd).
var DefaultImageID = builtinImages[0].ID

// BuiltinImages returns the recipes of the built-in images, for `nubis images build`.
func BuiltinImages() map[string]image.Recipe {
	out := map[string]image.Recipe{}
	for _, im := range builtinImages {
		out[im.ID+" "+im.Name] = *im.Recipe
	}
	return out
}

func lookupImage(id string) (machineImage, bool) {
	for _, im := range builtinImages {
		if im.ID == id {
			return im, true
		}
	}
	return machineImage{}, false
}

func validImageID(id string) bool {
	if !strings.HasPrefix(id, "ami-") || len(id) != 12 && len(id) != 21 {
		return false
	}
	for _, c := range id[4:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

type describeImagesInput struct {
	ImageIDs          []string `query:"ImageId"`
	Owners            []string `query:"Owner"`
	ExecutableUsers   []string `query:"ExecutableBy"`
	Filters           []Filter `query:"Filter"`
	IncludeDeprecated bool     `query:"IncludeDeprecated"`
	IncludeDisabled   bool     `query:"IncludeDisabled"`
	MaxResults        int      `query:"MaxResults"`
	NextToken         string   `query:"NextToken"`
	DryRun            bool     `query:"DryRun"`
}

type ebsBlockDevice struct {
	SnapshotID          string `xml:"snapshotId,omitempty"`
	VolumeSize          int    `xml:"volumeSize"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
	VolumeType          string `xml:"volumeType"`
	Encrypted           bool   `xml:"encrypted"`
}

type imageBlockDevice struct {
	DeviceName string         `xml:"deviceName"`
	EBS        ebsBlockDevice `xml:"ebs"`
}

type imageInfo struct {
	ImageID            string                          `xml:"imageId"`
	ImageLocation      string                          `xml:"imageLocation"`
	ImageState         string                          `xml:"imageState"`
	ImageOwnerID       string                          `xml:"imageOwnerId"`
	CreationDate       string                          `xml:"creationDate"`
	IsPublic           bool                            `xml:"isPublic"`
	Architecture       string                          `xml:"architecture"`
	ImageType          string                          `xml:"imageType"`
	Name               string                          `xml:"name"`
	Description        string                          `xml:"description"`
	RootDeviceType     string                          `xml:"rootDeviceType"`
	RootDeviceName     string                          `xml:"rootDeviceName"`
	BlockDeviceMapping awsproto.List[imageBlockDevice] `xml:"blockDeviceMapping"`
	VirtualizationType string                          `xml:"virtualizationType"`
	Tags               awsproto.List[Tag]              `xml:"tagSet"`
	Hypervisor         string                          `xml:"hypervisor"`
	EnaSupport         bool                            `xml:"enaSupport"`
	SriovNetSupport    string                          `xml:"sriovNetSupport"`
	PlatformDetails    string                          `xml:"platformDetails"`
	UsageOperation     string                          `xml:"usageOperation"`
	BootMode           string                          `xml:"bootMode"`
	ImdsSupport        string                          `xml:"imdsSupport"`
}

type describeImagesOutput struct {
	Images    awsproto.List[imageInfo] `xml:"imagesSet"`
	NextToken string                   `xml:"nextToken,omitempty"`
}

var imageFilters = map[string]bool{"architecture": true, "description": true, "image-id": true, "image-type": true,
	"is-public": true, "name": true, "owner-id": true, "owner-alias": true, "state": true, "root-device-type": true,
	"root-device-name": true, "virtualization-type": true, "hypervisor": true, "platform-details": true,
	"tag-key": true, "block-device-mapping.volume-size": true}

func (s *Service) describeImages(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeImagesInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkFilters(in.Filters, func(n string) bool { return imageFilters[n] || strings.HasPrefix(n, "tag:") }); err != nil {
		return nil, err
	}
	for _, id := range in.ImageIDs {
		if !validImageID(id) {
			return nil, clientError("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", id)
		}
	}
	if in.DryRun {
		return nil, errDryRun
	}
	tags, err := s.tagsByPrefix(ctx, r, "ami-")
	if err != nil {
		return nil, err
	}
	own, err := s.userImages(ctx, r.Caller.AccountID)
	if err != nil {
		return nil, err
	}
	want := setOf(in.ImageIDs)
	seen := map[string]bool{}
	var out describeImagesOutput
	for _, im := range append(slices.Clone(builtinImages), own...) {
		if len(want) > 0 && !want[im.ID] {
			continue
		}
		seen[im.ID] = true
		if len(in.Owners) > 0 && !ownerMatches(in.Owners, im, r.Caller.AccountID) {
			continue
		}
		if in.ExecutableUsers != nil && !im.Public && !slices.Contains(in.ExecutableUsers, "self") && !slices.Contains(in.ExecutableUsers, r.Caller.AccountID) {
			continue
		}
		tl := tags[im.ID]
		ok := matchFilters(in.Filters, func(name string) []string {
			switch name {
			case "architecture":
				return []string{im.Architecture}
			case "description":
				return []string{im.Description}
			case "image-id":
				return []string{im.ID}
			case "image-type":
				return []string{"machine"}
			case "is-public":
				return []string{boolString(im.Public)}
			case "name":
				return []string{im.Name}
			case "owner-id":
				return []string{im.OwnerID}
			case "owner-alias":
				return nil
			case "state":
				return []string{im.state()}
			case "root-device-type":
				return []string{"ebs"}
			case "root-device-name":
				return []string{"/dev/xvda"}
			case "virtualization-type":
				return []string{"hvm"}
			case "hypervisor":
				return []string{"xen"}
			case "platform-details":
				return []string{"Linux/UNIX"}
			case "block-device-mapping.volume-size":
				return []string{itoa(im.RootGiB)}
			}
			return tl.filterValues(name)
		})
		if ok {
			out.Images = append(out.Images, s.imageXML(im, tl))
		}
	}
	for _, id := range in.ImageIDs {
		if !seen[id] {
			return nil, clientError("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
		}
	}
	sort.Slice(out.Images, func(i, j int) bool { return out.Images[i].Name < out.Images[j].Name })
	return out, nil
}

func ownerMatches(owners []string, im machineImage, caller string) bool {
	for _, o := range owners {
		switch {
		case o == "self" && im.OwnerID == caller:
			return true
		case o == im.OwnerID:
			return true
		}
	}
	return false
}

func (s *Service) imageXML(im machineImage, tags tagList) imageInfo {
	return imageInfo{ImageID: im.ID, ImageLocation: im.OwnerID + "/" + im.Name, ImageState: im.state(),
		ImageOwnerID: im.OwnerID, CreationDate: timestamp(im.CreationDate), IsPublic: im.Public,
		Architecture: im.Architecture, ImageType: "machine", Name: im.Name, Description: im.Description,
		RootDeviceType: "ebs", RootDeviceName: "/dev/xvda",
		BlockDeviceMapping: awsproto.List[imageBlockDevice]{{DeviceName: "/dev/xvda",
			EBS: ebsBlockDevice{SnapshotID: derivedID("snap", im.ID), VolumeSize: im.RootGiB, DeleteOnTermination: true, VolumeType: "gp2"}}},
		VirtualizationType: "hvm", Tags: tags.xml(), Hypervisor: "xen", EnaSupport: true, SriovNetSupport: "simple",
		PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances", BootMode: "legacy-bios", ImdsSupport: "v2.0"}
}

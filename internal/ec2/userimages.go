package ec2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// Images of one's own: made from an instance (CreateImage), copied (CopyImage) or registered from
// a root file system (RegisterImage), stored under ec2/<account>/<region>/image/<id>. Their layers
// are directories under the fleet's image dir, shared by copies and by the instances launched from
// them, and deleted when nothing uses them any more.

func (s *Service) imageKey(account, id string) string {
	return "ec2/" + account + "/" + s.region + "/image/" + id
}

func (s *Service) imageNameKey(account, name string) string {
	return "ec2/" + account + "/" + s.region + "/image-name/" + name
}

func (s *Service) userImages(ctx context.Context, account string) ([]machineImage, error) {
	kvs, err := s.store.List(ctx, "ec2/"+account+"/"+s.region+"/image/", "", 0)
	if err != nil {
		return nil, err
	}
	out := make([]machineImage, 0, len(kvs))
	for _, kv := range kvs {
		var im machineImage
		if err := json.Unmarshal(kv.Value, &im); err != nil {
			return nil, fmt.Errorf("image %s: %w", kv.Key, err)
		}
		out = append(out, im)
	}
	return out, nil
}

// findImage looks an image up: a built-in one, or one of the account's.
func (s *Service) findImage(tx store.Tx, account, id string) (machineImage, bool, error) {
	if im, ok := lookupImage(id); ok {
		return im, true, nil
	}
	kv, err := tx.Get(s.imageKey(account, id))
	if errors.Is(err, store.ErrNotFound) {
		return machineImage{}, false, nil
	}
	if err != nil {
		return machineImage{}, false, err
	}
	var im machineImage
	return im, true, json.Unmarshal(kv.Value, &im)
}

func (s *Service) putImage(tx store.Tx, account string, im machineImage) error {
	b, err := json.Marshal(im)
	if err != nil {
		return err
	}
	return tx.Put(s.imageKey(account, im.ID), b)
}

func imageNotFound(id string) error {
	return clientError("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
}

// imageNameRE is what EC2 allows in an AMI name: 3 to 128 of letters, digits, ( ) [ ] space . /
// - ' @ _.
var imageNameRE = regexp.MustCompile(`^[A-Za-z0-9()\[\] ./\-'@_]{3,128}$`)

func validateImageName(name string) error {
	if name == "" {
		return missingParameter("Name")
	}
	if !imageNameRE.MatchString(name) {
		return invalidValue("Name", name, "AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/' and '_'")
	}
	return nil
}

// insertImage stores a new image and its name, refusing a name the account uses already.
func (s *Service) insertImage(tx store.Tx, account string, im machineImage, tags []storedTag) error {
	if err := tx.Create(s.imageNameKey(account, im.Name), []byte(im.ID)); err != nil {
		if errors.Is(err, store.ErrExists) {
			return clientError("InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI %s", im.Name, s.imageIDByName(tx, account, im.Name))
		}
		return err
	}
	if err := s.putImage(tx, account, im); err != nil {
		return err
	}
	return putTags(tx, "ec2/"+account+"/"+s.region+"/tags/"+im.ID, tagList(nil).set(tags))
}

func (s *Service) imageIDByName(tx store.Tx, account, name string) string {
	kv, err := tx.Get(s.imageNameKey(account, name))
	if err != nil {
		return "?"
	}
	return string(kv.Value)
}

type createImageInput struct {
	InstanceID          string                    `query:"InstanceId"`
	Name                string                    `query:"Name"`
	Description         string                    `query:"Description"`
	NoReboot            bool                      `query:"NoReboot"`
	TagSpecifications   []TagSpecification        `query:"TagSpecification"`
	BlockDeviceMappings []blockDeviceMappingInput `query:"BlockDeviceMapping"`
	DryRun              bool                      `query:"DryRun"`
}

type imageIDOutput struct {
	ImageID string `xml:"imageId"`
}

func (s *Service) createImage(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in createImageInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.InstanceID == "" {
		return nil, missingParameter("InstanceId")
	}
	if err := validateImageName(in.Name); err != nil {
		return nil, err
	}
	var keep []TagSpecification
	for _, ts := range in.TagSpecifications {
		if ts.ResourceType != "snapshot" {
			keep = append(keep, ts)
		}
	}
	tags, err := tagsFromSpecs(keep, "image")
	if err != nil {
		return nil, err
	}
	if s.fleet == nil && !in.DryRun {
		return nil, clientError("Unsupported", "Images cannot be made on this host: %s", s.noFleet)
	}
	account := r.Caller.AccountID
	var im machineImage
	var inst instance
	err = s.store.Update(ctx, func(tx store.Tx) error {
		var err error
		if inst, err = s.getInstance(tx, r, in.InstanceID); err != nil {
			return err
		}
		if inst.State != stateRunning && inst.State != stateStopped {
			return clientError("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be imaged (it is %s).", inst.ID, inst.State)
		}
		src, found, err := s.findImage(tx, account, inst.ImageID)
		if err != nil {
			return err
		}
		if in.DryRun {
			return errDryRun
		}
		im = machineImage{ID: newID("ami"), Name: in.Name, Description: in.Description, OwnerID: account,
			Architecture: "x86_64", RootGiB: inst.RootGiB, CreationDate: s.now().UTC(), State: "pending",
			SourceInstance: inst.ID}
		// The new image is the instance's disk over the layers of the image it was launched from.
		im.Layers = []string{filepath.Join(s.fleet.imageDir, im.ID)}
		if found {
			im.Layers = append(im.Layers, src.Layers...)
			im.Base = src.Base
			if src.Recipe != nil {
				im.Base = src.ID
			}
		} else {
			im.Layers = append(im.Layers, inst.ImageLayers...)
			im.Base = inst.BaseImage
		}
		return s.insertImage(tx, account, im, tags)
	})
	if err != nil {
		return nil, err
	}
	f := s.fleet
	f.goDo(func() { f.imageInstance(account, im, inst.ID, in.NoReboot) })
	return imageIDOutput{ImageID: im.ID}, nil
}

type deregisterImageInput struct {
	ImageID                   string `query:"ImageId"`
	DeleteAssociatedSnapshots bool   `query:"DeleteAssociatedSnapshots"`
	DryRun                    bool   `query:"DryRun"`
}

func (s *Service) deregisterImage(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in deregisterImageInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.ImageID == "" {
		return nil, missingParameter("ImageId")
	}
	if !validImageID(in.ImageID) {
		return nil, clientError("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", in.ImageID)
	}
	account := r.Caller.AccountID
	err := s.store.Update(ctx, func(tx store.Tx) error {
		im, found, err := s.findImage(tx, account, in.ImageID)
		if err != nil {
			return err
		}
		if !found {
			return imageNotFound(in.ImageID)
		}
		if im.OwnerID != account {
			return clientError("AuthFailure", "Not authorized for image:%s", im.ID)
		}
		if in.DryRun {
			return errDryRun
		}
		for _, key := range []string{s.imageKey(account, im.ID), s.imageNameKey(account, im.Name)} {
			if err := tx.Delete(key); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return putTags(tx, "ec2/"+account+"/"+s.region+"/tags/"+im.ID, nil)
	})
	if err != nil {
		return nil, err
	}
	if s.fleet != nil {
		s.fleet.collectLayers(ctx)
	}
	return returnOutput{Return: true}, nil
}

type copyImageInput struct {
	SourceImageID     string             `query:"SourceImageId"`
	SourceRegion      string             `query:"SourceRegion"`
	Name              string             `query:"Name"`
	Description       string             `query:"Description"`
	ClientToken       string             `query:"ClientToken"`
	Encrypted         bool               `query:"Encrypted"`
	KmsKeyID          string             `query:"KmsKeyId"`
	CopyImageTags     bool               `query:"CopyImageTags"`
	TagSpecifications []TagSpecification `query:"TagSpecification"`
	DryRun            bool               `query:"DryRun"`
}

// copyImage makes a new image of the same root: it shares the source's layers, so it is instant.
func (s *Service) copyImage(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in copyImageInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.SourceImageID == "" {
		return nil, missingParameter("SourceImageId")
	}
	if in.SourceRegion == "" {
		return nil, missingParameter("SourceRegion")
	}
	if in.SourceRegion != s.region {
		return nil, invalidValue("SourceRegion", in.SourceRegion, "This nubis server is region "+s.region+" only.")
	}
	if err := validateImageName(in.Name); err != nil {
		return nil, err
	}
	tags, err := tagsFromSpecs(in.TagSpecifications, "image")
	if err != nil {
		return nil, err
	}
	account := r.Caller.AccountID
	var out imageIDOutput
	err = s.store.Update(ctx, func(tx store.Tx) error {
		src, found, err := s.findImage(tx, account, in.SourceImageID)
		if err != nil {
			return err
		}
		if !found {
			return imageNotFound(in.SourceImageID)
		}
		if src.state() != "available" {
			return clientError("IncorrectState", "Image %s is not available (it is %s).", src.ID, src.state())
		}
		if in.DryRun {
			return errDryRun
		}
		if in.CopyImageTags {
			l, err := loadTags(tx.Get("ec2/" + account + "/" + s.region + "/tags/" + src.ID))
			if err != nil {
				return err
			}
			tags = append(append([]storedTag{}, l...), tags...)
		}
		im := src
		im.ID, im.Name, im.Description, im.OwnerID, im.Public = newID("ami"), in.Name, in.Description, account, false
		im.CreationDate, im.State, im.Recipe = s.now().UTC(), "available", nil
		if src.Recipe != nil {
			im.Base, im.Layers = src.ID, nil
		}
		out.ImageID = im.ID
		return s.insertImage(tx, account, im, tags)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

type registerImageInput struct {
	Name                string                    `query:"Name"`
	Description         string                    `query:"Description"`
	ImageLocation       string                    `query:"ImageLocation"`
	Architecture        string                    `query:"Architecture"`
	RootDeviceName      string                    `query:"RootDeviceName"`
	VirtualizationType  string                    `query:"VirtualizationType"`
	EnaSupport          bool                      `query:"EnaSupport"`
	SriovNetSupport     string                    `query:"SriovNetSupport"`
	BootMode            string                    `query:"BootMode"`
	ImdsSupport         string                    `query:"ImdsSupport"`
	BlockDeviceMappings []blockDeviceMappingInput `query:"BlockDeviceMapping"`
	TagSpecifications   []TagSpecification        `query:"TagSpecification"`
	DryRun              bool                      `query:"DryRun"`
}

// registerImage registers an image from a root file system on this host: ImageLocation is the path
// of a directory or of a tar archive (.tar, .tar.gz, .tar.xz, .tar.zst) holding the whole root
// (nubis has no S3 manifests, and snapshots arrive with EBS). The root must bring what an instance
// needs (sshd, the login user's shell); nubis's init is added from outside.
func (s *Service) registerImage(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in registerImageInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if err := validateImageName(in.Name); err != nil {
		return nil, err
	}
	if in.Architecture != "" && in.Architecture != "x86_64" {
		return nil, invalidValue("Architecture", in.Architecture, "This host runs x86_64 images only.")
	}
	loc := strings.TrimPrefix(in.ImageLocation, "file://")
	if loc == "" {
		return nil, clientError("InvalidParameterValue", "nubis registers images from a root file system on its host: give ImageLocation as the path of a directory or tar archive (snapshots arrive with EBS volumes).")
	}
	fi, err := os.Stat(loc)
	if err != nil || !filepath.IsAbs(loc) {
		return nil, invalidValue("ImageLocation", in.ImageLocation, "It is not an absolute path of a directory or tar archive on the nubis host.")
	}
	tags, err := tagsFromSpecs(in.TagSpecifications, "image")
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	if s.fleet == nil {
		return nil, clientError("Unsupported", "Images cannot be registered on this host: %s", s.noFleet)
	}
	account := r.Caller.AccountID
	im := machineImage{ID: newID("ami"), Name: in.Name, Description: in.Description, OwnerID: account,
		Architecture: "x86_64", RootGiB: 8, CreationDate: s.now().UTC(), State: "available"}
	layer := filepath.Join(s.fleet.imageDir, im.ID)
	im.Layers = []string{layer}
	if err := importRoot(ctx, loc, fi.IsDir(), layer); err != nil {
		return nil, clientError("InvalidParameterValue", "Could not import %s: %v", loc, err)
	}
	err = s.store.Update(ctx, func(tx store.Tx) error { return s.insertImage(tx, account, im, tags) })
	if err != nil {
		os.RemoveAll(layer)
		return nil, err
	}
	return imageIDOutput{ImageID: im.ID}, nil
}

// importRoot copies a root file system (a directory, or a tar archive tar can read) into layer.
func importRoot(ctx context.Context, src string, isDir bool, layer string) error {
	tmp := layer + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	var cmd *exec.Cmd
	if isDir {
		cmd = exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", src+"/.", tmp)
	} else {
		cmd = exec.CommandContext(ctx, "tar", "-xf", src, "-C", tmp, "--numeric-owner", "--xattrs", "--xattrs-include=*")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	if _, err := os.Stat(filepath.Join(tmp, "bin", "sh")); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("it holds no root file system (no /bin/sh)")
	}
	return os.Rename(tmp, layer)
}

// imageInstance makes the layer of a new image from an instance's disk. Unless noReboot, a
// running instance is shut down for a consistent copy and booted again, as EC2 reboots it.
func (f *fleet) imageInstance(account string, im machineImage, instID string, noReboot bool) {
	t := f.track(account, instID)
	t.op.Lock()
	defer t.op.Unlock()
	ctx := context.WithoutCancel(f.ctx)
	inst, err := f.update(account, instID, func(*instance) bool { return false })
	t.mu.Lock()
	running := t.m != nil
	t.mu.Unlock()
	reboot := err == nil && inst.State == stateRunning && running && !noReboot
	if reboot {
		f.shutdown(t, f.grace)
	}
	copyErr := f.machines.CopyDisk(ctx, instID, im.Layers[0])
	if reboot {
		f.setState(account, instID, stateRunning, statePending, "", "")
		f.bootLocked(t, false)
	}
	state, reason := "available", ""
	if copyErr != nil {
		f.log.Error("create image", "image", im.ID, "instance", instID, "err", copyErr)
		state, reason = "failed", "Server.InternalError: "+copyErr.Error()
	}
	err = f.s.store.Update(ctx, func(tx store.Tx) error {
		cur, found, err := f.s.findImage(tx, account, im.ID)
		if err != nil || !found {
			return err // deregistered meanwhile
		}
		cur.State, cur.StateReason = state, reason
		return f.s.putImage(tx, account, cur)
	})
	if err != nil {
		f.log.Error("record image state", "image", im.ID, "err", err)
	}
	f.collectLayers(ctx)
}

// collectLayers deletes the image layers nothing uses any more: no image of any account, no
// instance that is not terminated.
func (f *fleet) collectLayers(ctx context.Context) {
	if f.imageDir == "" {
		return
	}
	entries, err := os.ReadDir(f.imageDir)
	if err != nil {
		return
	}
	kvs, err := f.s.store.List(ctx, "ec2/", "", 0)
	if err != nil {
		return
	}
	used := map[string]bool{}
	for _, kv := range kvs {
		parts := strings.Split(kv.Key, "/")
		if len(parts) != 5 || parts[2] != f.s.region {
			continue
		}
		switch parts[3] {
		case "image":
			var im machineImage
			if json.Unmarshal(kv.Value, &im) == nil {
				for _, l := range im.Layers {
					used[l] = true
				}
			}
		case "instance":
			var inst instance
			if json.Unmarshal(kv.Value, &inst) == nil && inst.State != stateTerminated {
				for _, l := range inst.ImageLayers {
					used[l] = true
				}
			}
		}
	}
	for _, e := range entries {
		path := filepath.Join(f.imageDir, e.Name())
		if used[path] || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		// A layer being made is recorded only once it is complete.
		if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < time.Minute {
			continue
		}
		f.log.Info("deleting an image layer nothing uses", "layer", path)
		if err := os.RemoveAll(path); err != nil {
			f.log.Error("delete image layer", "layer", path, "err", err)
		}
	}
}

package ec2

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nubis/nubis/internal/imds"
	"github.com/nubis/nubis/internal/machine"
	"github.com/nubis/nubis/internal/store"
)

// metadataAddr is where an instance finds its metadata service.
const metadataAddr = "169.254.169.254:80"

// serveMetadata serves the instance metadata service inside the machine's network, on a listener
// of this process: an instance reaches only its own.
func (f *fleet) serveMetadata(t *tracked, m machine.Machine) {
	l, err := m.Listen(f.ctx, "tcp", metadataAddr)
	if err != nil {
		f.log.Error("instance metadata service", "id", t.id, "err", err)
		return
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	h := imds.NewHandler(imds.Config{Source: f.metadataSource(t.account, t.id), Secret: secret,
		Log: f.log.With("id", t.id, "part", "imds")})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	t.mu.Lock()
	if t.imds != nil {
		t.imds.Close()
	}
	t.imds = srv
	t.mu.Unlock()
	f.goDo(func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			f.log.Debug("instance metadata service ended", "id", t.id, "err", err)
		}
	})
}

// metadataSource reads an instance's metadata from the store on every request.
func (f *fleet) metadataSource(account, id string) imds.Source {
	s := f.s
	return func(ctx context.Context) (imds.Metadata, imds.Options, error) {
		var inst instance
		var tags tagList
		err := s.store.View(ctx, func(tx store.Tx) error {
			var err error
			if inst, err = s.getInstanceOf(tx, account, id); err != nil {
				return err
			}
			tags, err = loadTags(tx.Get("ec2/" + account + "/" + s.region + "/tags/" + id))
			return err
		})
		if err != nil {
			return imds.Metadata{}, imds.Options{}, fmt.Errorf("instance %s: %w", id, err)
		}
		sn, _ := s.findSubnet(account, inst.SubnetID)
		var names []string
		for _, g := range s.groupXML(account, inst.Groups) {
			names = append(names, g.GroupName)
		}
		md := imds.Metadata{AccountID: account, Region: s.region, AvailabilityZone: inst.Zone,
			InstanceID: inst.ID, InstanceType: inst.Type, ImageID: inst.ImageID, ReservationID: inst.ReservationID,
			Architecture: "x86_64", LocalIPv4: inst.PrivateIP, PublicIPv4: inst.publicIP(),
			LocalHostname: s.privateDNSName(inst.PrivateIP), MAC: inst.MAC, InterfaceID: derivedID("eni", inst.ID),
			VPCID: inst.VPCID, SubnetID: inst.SubnetID, VPCCIDR: sn.VPC.CIDR.String(), SubnetCIDR: sn.CIDR.String(),
			SecurityGroups: names, SecurityGroupIDs: inst.Groups, KeyName: inst.KeyName, PublicKey: inst.PublicKey,
			BlockDevices: map[string]string{"ami": inst.RootDevice, "root": inst.RootDevice},
			UserData:     inst.UserData, LaunchTime: inst.LaunchTime, Tags: map[string]string{}}
		for _, t := range tags {
			md.Tags[t.Key] = t.Value
		}
		md.ManagedSSHKeys = s.pushed.active(id)
		opts := imds.Options{HttpEndpoint: inst.Metadata.HttpEndpoint, HttpTokens: inst.Metadata.HttpTokens,
			HttpPutResponseHopLimit: inst.Metadata.HopLimit, InstanceMetadataTags: inst.Metadata.InstanceMetadataTags}
		return md, opts, nil
	}
}

// The -esx mode of vcsim-ext (see main.go's header): a direct ESXi endpoint, and the
// -extra-vm VMs of both modes.
package main

import (
	"fmt"
	"log"
	"os"
	"reflect"
	"strings"

	"github.com/google/uuid"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/vim25/types"
)

// extraVM is one -extra-vm NAME=IP.
type extraVM struct {
	name, ip string
}

func parseExtraVMs(s string) []extraVM {
	var out []extraVM
	for _, item := range strings.Split(s, ",") {
		if item == "" {
			continue
		}
		parts := strings.SplitN(item, "=", 2)
		vm := extraVM{name: parts[0]}
		if len(parts) == 2 {
			vm.ip = parts[1]
		}
		out = append(out, vm)
	}
	return out
}

// esxModel is the simulator's ESX model (HostAgent, one host "ha-host") with -vm VMs and
// the extra ones.
func esxModel(extra int) *simulator.Model {
	m := simulator.ESX()
	m.Machine = *nvm + extra
	return m
}

// esxSetup names the host -esx-name, gives it the hardware uuid the vCenter model gives a
// host of that name (sha1 uuid of the name in the OID namespace: simulator/object.go), and
// turns DRS off: a host alone has nowhere to move its VMs.
func esxSetup(h *simulator.HostSystem) {
	id := uuid.NewSHA1(uuid.NameSpaceOID, []byte(*esxName)).String()
	simulator.Map.WithLock(h, func() {
		if h.Summary.Hardware != nil {
			h.Summary.Hardware.Uuid = id
		}
		if h.Hardware != nil {
			h.Hardware.SystemInfo.Uuid = id
		}
		h.Summary.Config.Name = *esxName
		simulator.Map.Update(h, []types.PropertyChange{{Name: "name", Val: *esxName}})
	})
	mu.Lock()
	drsAuto = false
	mu.Unlock()
	log.Printf("esx: host %s, uuid %s", *esxName, id)
}

// setGuestIP gives a VM its guest IP address (as VMware Tools report it).
func setGuestIP(v *simulator.VirtualMachine, ip string) {
	if ip == "" {
		return
	}
	simulator.Map.WithLock(v, func() {
		if v.Guest == nil {
			v.Guest = &types.GuestInfo{}
		}
		v.Guest.IpAddress = ip
		v.Guest.Net = []types.GuestNicInfo{{IpAddress: []string{ip}, Connected: true}}
		if v.Summary.Guest != nil {
			v.Summary.Guest.IpAddress = ip
		}
	})
}

// esxHostDown: a direct ESXi endpoint goes away with its host (-esx); nothing otherwise.
func esxHostDown() {
	if *esxMode {
		log.Printf("esx: host %s is down, the endpoint goes away", *esxName)
		os.Exit(0)
	}
}

// licenseManager is the LicenseManager of the model (-free-esxi sets its licence).
func licenseManager() types.ManagedObjectReference {
	if *esxMode {
		return *esx.ServiceContent.LicenseManager
	}
	return types.ManagedObjectReference{Type: "LicenseManager", Value: "LicenseManager"}
}

// setLockdown shows the named hosts in normal lockdown mode (-lockdown).
func setLockdown(hosts []*simulator.HostSystem, names map[string]bool) {
	for _, h := range hosts {
		if names[h.Name] && h.Config != nil {
			simulator.Map.WithLock(h, func() {
				h.Config.LockdownMode = types.HostLockdownModeLockdownNormal
			})
		}
	}
}

// uniqueMAC gives VM number i its own MAC address (the simulator gives every VM the same
// one), so that a VM can be told apart by its MAC address as on a real host.
func uniqueMAC(v *simulator.VirtualMachine, i int) {
	simulator.Map.WithLock(v, func() {
		if v.Config == nil {
			return
		}
		for j, dev := range v.Config.Hardware.Device {
			if _, ok := dev.(types.BaseVirtualEthernetCard); !ok {
				continue
			}
			// the VMs share their NIC objects: give this VM a copy of its own
			orig := reflect.ValueOf(dev).Elem()
			dup := reflect.New(orig.Type())
			dup.Elem().Set(orig)
			nic := dup.Interface().(types.BaseVirtualDevice)
			nic.(types.BaseVirtualEthernetCard).GetVirtualEthernetCard().MacAddress =
				fmt.Sprintf("00:50:56:00:%02x:%02x", i/256, i%256)
			v.Config.Hardware.Device[j] = nic
		}
	})
}

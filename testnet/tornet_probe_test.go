package testnet

import (
	"context"
	"testing"
	"time"
)

func TestTorNetProbe(t *testing.T) {
	n := &Network{}
	dir := t.TempDir()
	tn, err := n.generateTor(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := n.startTor(context.Background(), false)
	defer n.StopAll(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("up in %v socks %s", d, tn.SOCKS)
}

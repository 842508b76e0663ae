package testnet

// The chaos suite's abusive clients: a descriptor flood from its own
// loopback source address, and slow connections on every port.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
)

// floodSource is the loopback address the flood comes from (and claims in
// its descriptors), so that the authority tells it from the real relays on
// 127.0.0.1.
const floodSource = "127.0.0.66"

// floodAuthority uploads count descriptors of fresh identities, as fast as
// one connection at a time allows, and counts the answers by status.
func floodAuthority(ctx context.Context, auth *Node, count int) map[int]int {
	counts := map[int]int{}
	if auth == nil {
		return counts
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(floodSource)}}).DialContext,
	}}
	defer client.CloseIdleConnections()
	url := "http://" + auth.Listeners["dir"] + directory.PathDescriptor
	for i := range count {
		if ctx.Err() != nil {
			break
		}
		doc, err := sybilDescriptor(fmt.Sprintf("%s:%d", floodSource, 20000+i))
		if err != nil {
			counts[-1]++
			continue
		}
		resp, err := client.Post(url, "text/plain", bytes.NewReader(doc))
		if err != nil {
			counts[0]++
			continue
		}
		resp.Body.Close()
		counts[resp.StatusCode]++
	}
	return counts
}

// sybilDescriptor signs a guard descriptor of a fresh identity claiming
// addr, which nothing serves.
func sybilDescriptor(addr string) ([]byte, error) {
	id, err := keys.NewIdentity(nil)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	onion, err := keys.NewOnionKey(nil, now)
	if err != nil {
		return nil, err
	}
	link, err := keys.NewLinkKey(nil)
	if err != nil {
		return nil, err
	}
	d := directory.Descriptor{
		Nickname: "sybil", Published: now, Onion: directory.OnionPublicOf(onion), LinkKey: link.Public,
		LinkCert:   keys.CertifyLink(id, link.Public, now.Add(24*time.Hour)),
		Transports: []directory.Transport{{Name: "tcp", Addr: addr}},
		Roles:      []directory.Role{directory.RoleGuard},
		Capacity:   directory.Capacity{Sessions: 64, TokensPerSec: 1000},
	}
	return d.Sign(id)
}

// holdSlowConns opens per connections to every listener of every running
// node, each sending a little of what its port expects and then nothing,
// holds them for d and closes them.
func holdSlowConns(ctx context.Context, n *Network, per int, d time.Duration) {
	var conns []net.Conn
	var mu sync.Mutex
	n.mu.Lock()
	var addrs []string
	for _, node := range n.Nodes {
		if node.Proc == nil || node.Proc.Exited() {
			continue
		}
		for _, a := range node.Listeners {
			addrs = append(addrs, a)
		}
	}
	n.mu.Unlock()
	for _, a := range addrs {
		for i := range per {
			c, err := net.DialTimeout("tcp", a, 2*time.Second)
			if err != nil {
				continue
			}
			switch i % 3 {
			case 0: // an HTTP request whose body never comes
				fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
			case 1: // half a header line
				c.Write([]byte("GET / HT"))
			case 2: // nothing
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}
	waitCtx(ctx, d)
	for _, c := range conns {
		c.Close()
	}
}

// Command unfed is the operator and developer tool: keys, models, local
// generation, directory documents and the local testnet. Each subcommand is a
// library function; this file only dispatches.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/unfed/unfed/compute/computecli"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/daemon"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/obs"
	"github.com/unfed/unfed/sharechain"
	"github.com/unfed/unfed/testnet"
)

// commands maps "verb" or "verb sub" to its implementation.
var commands = map[string]struct {
	run  daemon.Command
	help string
}{
	"keygen":             {keys.KeygenCommand, "create or load a node's keys in --data-dir and print its fingerprint"},
	"model info":         {computecli.Info, "describe a model file: architecture, shapes, tokenizer, model id"},
	"model manifest":     {computecli.Manifest, "print a model's manifest and its split into --shards N layer ranges"},
	"model synth":        {computecli.Synth, "write a synthetic model of a real shape (--shape, --dtype, --out)"},
	"model bundle":       {computecli.Bundle, "write a model's client bundle: tokenizer, embedding, output head, manifest (--out DIR|FILE)"},
	"generate":           {computecli.Generate, "generate locally from a model (--model, --prompt, --max-tokens, --shards)"},
	"consensus show":     {directory.ConsensusShow, "show a consensus from a FILE or URL"},
	"descriptor show":    {directory.DescriptorShow, "show a relay descriptor from a FILE or URL"},
	"authority certify":  {directory.CertifyCommand, "certify a new signing key for an authority whose identity key stays offline (--identity-dir, --out, --lifetime)"},
	"wallet balance":     {sharechain.WalletBalance, "show the credits in a client's wallet (--data-dir)"},
	"wallet request":     {sharechain.WalletRequest, "ask a mint for credits worth --amount units (--data-dir, --mint URL)"},
	"sharechain faucet":  {sharechain.Faucet, "run a testnet mint that issues credits to anyone (--data-dir, --listen)"},
	"sharechain serve":   {sharechain.Serve, "follow a share-chain (as an authority does): take gossip, serve the explorer API and /metrics (--data-dir, --listen, --mint)"},
	"sharechain status":  {sharechain.Status, "show a stored share-chain: tip, value, payouts, spent set (--data-dir)"},
	"sharechain blocks":  {sharechain.Blocks, "list the best chain's latest share blocks (--data-dir, --limit)"},
	"sharechain payouts": {sharechain.Payouts, "show every relay's PPLNS payout over the matured chain (--data-dir)"},
	"sharechain relay":   {sharechain.Relay, "show one relay's blocks, shares, payout and stake (--data-dir FP)"},
	"sharechain unbond":  {sharechain.Unbond, "withdraw a relay's stake after the unbonding period (--data-dir of the relay, --amount)"},
	"testnet":            {testnet.Command, "run a local network: up, status, down, demo (--dir, --model, --shards, --replicas)"},
	"audit":              {testnet.AuditCommand, "measure what each relay can recover: a local network, built-in prompts, attacks (--mode anonymous|confidential)"},
}

func main() {
	args := os.Args[1:]
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(os.Stdout)
		return
	}
	if args[0] == "--version" || args[0] == "-version" || args[0] == "version" {
		fmt.Print(obs.VersionLine("unfed"))
		return
	}
	name := args[0]
	rest := args[1:]
	if len(rest) > 0 {
		if _, ok := commands[args[0]+" "+args[1]]; ok {
			name, rest = args[0]+" "+args[1], args[2:]
		}
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "unfed: unknown command %q\n\n", strings.Join(args[:min(2, len(args))], " "))
		usage(os.Stderr)
		os.Exit(2)
	}
	os.Exit(daemon.RunCommand("unfed", c.run, rest))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: unfed COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-20s %s\n", n, commands[n].help)
	}
	fmt.Fprintln(w, "\nRun `unfed COMMAND --help` for a command's flags; `unfed --version` prints the build.")
}

module github.com/unfed/unfed

go 1.26.8

require (
	filippo.io/bigmod v0.1.0
	github.com/ardanlabs/jinja v1.8.0
	github.com/cloudflare/circl v1.6.5
	github.com/cretz/bine v0.2.0
	github.com/flynn/noise v1.1.0
	github.com/go-viper/mapstructure/v2 v2.4.0
	github.com/mattn/go-sqlite3 v1.14.53
	github.com/oasisprotocol/curve25519-voi v0.0.0-20230904125328-1f23a7beb09a
	github.com/prometheus/client_golang v1.23.2
	github.com/prometheus/client_model v0.6.2
	github.com/quic-go/quic-go v0.65.0
	github.com/spf13/pflag v1.0.10
	github.com/spf13/viper v1.21.0
	gitlab.com/yawning/obfs4.git v0.0.0-20231012084234-c3e2d44b1033
	gitlab.torproject.org/tpo/anti-censorship/pluggable-transports/goptlib v1.5.0
	go.yaml.in/yaml/v3 v3.0.5
	golang.org/x/crypto v0.54.0
	golang.org/x/net v0.56.0
	golang.org/x/sys v0.47.0
	golang.org/x/time v0.16.0
	lukechampine.com/blake3 v1.5.2
)

require (
	filippo.io/edwards25519 v1.0.0 // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dchest/siphash v1.2.3 // indirect
	github.com/fsnotify/fsnotify v1.9.0 // indirect
	github.com/klauspost/cpuid/v2 v2.0.12 // indirect
	github.com/kylelemons/godebug v1.1.0 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/pelletier/go-toml/v2 v2.2.4 // indirect
	github.com/prometheus/common v0.66.1 // indirect
	github.com/prometheus/procfs v0.16.1 // indirect
	github.com/sagikazarmark/locafero v0.11.0 // indirect
	github.com/sourcegraph/conc v0.3.1-0.20240121214520-5f936abd7ae8 // indirect
	github.com/spf13/afero v1.15.0 // indirect
	github.com/spf13/cast v1.10.0 // indirect
	github.com/subosito/gotenv v1.6.0 // indirect
	gitlab.com/yawning/edwards25519-extra v0.0.0-20231005122941-2149dcafc266 // indirect
	go.yaml.in/yaml/v2 v2.4.2 // indirect
	golang.org/x/text v0.40.0 // indirect
	google.golang.org/protobuf v1.36.8 // indirect
)

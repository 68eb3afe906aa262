module github.com/omikuji/omikuji/test/e2e

go 1.26.0

replace github.com/omikuji/omikuji => ../..

require (
	github.com/google/go-containerregistry v0.22.1
	github.com/omikuji/omikuji v0.0.0-00010101000000-000000000000
)

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	gonum.org/v1/gonum v0.17.0 // indirect
)

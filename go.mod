module github.com/omikuji/omikuji

go 1.26

module gcload

go 1.19

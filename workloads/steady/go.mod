module steady

go 1.19

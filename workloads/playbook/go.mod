module playbook

go 1.19

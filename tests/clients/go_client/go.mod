module kz-go-client

go 1.19

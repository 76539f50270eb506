module kz-go-h2-client

go 1.19

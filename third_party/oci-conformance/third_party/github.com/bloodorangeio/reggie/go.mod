module github.com/bloodorangeio/reggie

go 1.20

require (
	github.com/asaskevich/govalidator v0.0.0-20230301143203-a9d515a09cc2
	github.com/go-resty/resty/v2 v2.7.0
	github.com/mitchellh/mapstructure v1.5.0
)

require golang.org/x/net v0.0.0-20211029224645-99673261e6eb // indirect

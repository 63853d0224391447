module github.com/chatscalable/chatscalable/web

go 1.26.0

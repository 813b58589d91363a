package web

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

var pages = template.Must(template.New("").ParseFS(assets, "assets/*.html"))

// page is what every page's template gets.
type page struct {
	Title string
	Name  string // the link's, on its pages
	Links []LinkView
	Live  *LinkView
}

func (w *Web) registerPages(mux *http.ServeMux) {
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", func(rw http.ResponseWriter, r *http.Request) {
		w.render(rw, "overview.html", page{Title: "Links", Links: w.views()})
	})
	mux.HandleFunc("GET /assess", func(rw http.ResponseWriter, r *http.Request) {
		w.render(rw, "assess.html", page{Title: "Assess a source and a target"})
	})
	mux.HandleFunc("GET /links/{name}", func(rw http.ResponseWriter, r *http.Request) {
		w.linkPage(rw, r, "link.html", "Link ")
	})
	mux.HandleFunc("GET /links/{name}/failover", func(rw http.ResponseWriter, r *http.Request) {
		w.linkPage(rw, r, "failover.html", "Fail over link ")
	})
}

func (w *Web) linkPage(rw http.ResponseWriter, r *http.Request, tmpl, title string) {
	name := r.PathValue("name")
	l, ok := w.liveOf(name)
	if !ok {
		http.Error(rw, "no link "+name+" in this pglink serve's file", http.StatusNotFound)
		return
	}
	v := w.view(l)
	w.render(rw, tmpl, page{Title: title + name, Name: name, Live: &v})
}

func (w *Web) render(rw http.ResponseWriter, name string, p page) {
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	rw.Header().Set("Cache-Control", "no-store")
	if err := pages.ExecuteTemplate(rw, name, p); err != nil {
		w.log.Error("render a page", "page", name, "error", err)
	}
}

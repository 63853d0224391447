package mercure

import (
	"regexp"
	"strings"
	"sync"

	"github.com/yosida95/uritemplate/v3"
)

// Topic selectors, as Mercure matches them (topic_selector.go): "*"
// matches every topic, a selector equal to the topic matches it, and a
// selector holding "{" is an RFC 6570 URI template whose expansion
// pattern, anchored, must match the topic; an invalid template is a plain
// string. The same rule serves the subscribe query's selectors and the
// publish and subscribe claims.

// templates caches compiled templates by selector (nil: not a template or
// invalid). It is bounded: past maxTemplates entries it is cleared, and a
// miss only costs a compile.
var templates = struct {
	sync.Mutex
	m map[string]*regexp.Regexp
}{m: map[string]*regexp.Regexp{}}

const maxTemplates = 10000

func templateOf(selector string) *regexp.Regexp {
	templates.Lock()
	re, ok := templates.m[selector]
	templates.Unlock()
	if ok {
		return re
	}
	if t, err := uritemplate.New(selector); err == nil {
		re = t.Regexp()
	}
	templates.Lock()
	if len(templates.m) >= maxTemplates {
		clear(templates.m)
	}
	templates.m[selector] = re
	templates.Unlock()
	return re
}

// match reports whether topic matches selector.
func match(topic, selector string) bool {
	if selector == "*" || topic == selector {
		return true
	}
	if !strings.Contains(selector, "{") {
		return false
	}
	re := templateOf(selector)
	return re != nil && re.MatchString(topic)
}

// matchAny reports whether any topic matches any selector.
func matchAny(topics, selectors []string) bool {
	for _, t := range topics {
		for _, s := range selectors {
			if match(t, s) {
				return true
			}
		}
	}
	return false
}

// matchAll reports whether every topic matches some selector (a publish
// claim must cover each topic of an update).
func matchAll(topics, selectors []string) bool {
	for _, t := range topics {
		if !matchAny([]string{t}, selectors) {
			return false
		}
	}
	return true
}

// filter is what a subscriber receives: updates with a topic matching one
// of its selectors, and of private updates those with a topic matching
// one of its subscribe claim's selectors (nil for an anonymous
// subscriber, who gets no private update).
type filter struct {
	selectors []string
	allowed   []string
}

// accepts reports whether the filter takes an update with topics.
func (f *filter) accepts(u *updateMeta) bool {
	if u.private && !matchAny(u.topics, f.allowed) {
		return false
	}
	return matchAny(u.topics, f.selectors)
}

// updateMeta is a frame's Meta: what subscribers' filters decide by, and
// their decisions so far. Subscribers with the same selectors and claims
// share one filter (filters), so an update is matched once per distinct
// filter, not once per subscriber. Accept runs under the room's delivery
// lock, one frame at a time, so memo needs no lock of its own.
type updateMeta struct {
	topics  []string
	private bool
	memo    map[*filter]bool
}

func (u *updateMeta) acceptedBy(f *filter) bool {
	if ok, seen := u.memo[f]; seen {
		return ok
	}
	ok := f.accepts(u)
	if u.memo == nil {
		u.memo = make(map[*filter]bool, 4)
	}
	u.memo[f] = ok
	return ok
}

// filters interns filters by their selectors and claims, counting their
// subscribers.
type filters struct {
	mu sync.Mutex
	m  map[string]*internedFilter
}

type internedFilter struct {
	filter
	users int
}

func filterKey(selectors, allowed []string) string {
	var b strings.Builder
	for _, s := range selectors {
		b.WriteString(s)
		b.WriteByte(0)
	}
	b.WriteByte(1)
	if allowed != nil {
		b.WriteByte(2)
	}
	for _, s := range allowed {
		b.WriteString(s)
		b.WriteByte(0)
	}
	return b.String()
}

// get returns the shared filter of selectors and allowed; put must be
// called once when its subscriber leaves.
func (fs *filters) get(selectors, allowed []string) (*filter, func()) {
	key := filterKey(selectors, allowed)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.m == nil {
		fs.m = map[string]*internedFilter{}
	}
	f := fs.m[key]
	if f == nil {
		f = &internedFilter{filter: filter{selectors: selectors, allowed: allowed}}
		fs.m[key] = f
	}
	f.users++
	return &f.filter, func() {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		if f.users--; f.users == 0 {
			delete(fs.m, key)
		}
	}
}

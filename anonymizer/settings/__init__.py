"""daemon.yaml's settings, validated once at load into frozen objects: the daemon's folders
(daemon.py), the API (api.py), buckets (buckets.py) and scale-out (scaleout.py). Below every
package that reads them, so the API, the buckets and the workers never import the daemon."""

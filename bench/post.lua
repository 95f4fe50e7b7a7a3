-- wrk script: every request POSTs a 1 MB body (bench/run.py, workload "post").
wrk.method = "POST"
wrk.body = string.rep("p", 1024 * 1024)
wrk.headers["Content-Type"] = "application/octet-stream"

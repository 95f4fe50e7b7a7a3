# conf/flask-static.conf's app. Flask's own /static/ route would serve
# static/ too; it answers with a marker header so a test can tell whether
# Apache or Flask served a file.
import os

from flask import Flask

app = Flask("flaskapp", root_path=os.path.dirname(os.path.abspath(__file__)))


@app.get("/")
def index():
    return "hello from flask"


@app.after_request
def mark(response):
    response.headers["X-Served-By"] = "flask"
    return response


application = app

"""Every project rule (dynamics/judges/static/_rules.py, _taint_rules.py) on a flagged and an unflagged example.

The unflagged examples are the fixed versions a careful programmer writes (escaped, parameterised, checked),
so each pair shows the line the rule draws, not only that it fires."""

import pytest

from dynamics.judges.static import RULES, StaticCodeJudge
from dynamics.judges.static._project import RulesAnalyser

FLASK = "from flask import Flask, request, make_response, render_template_string, redirect, send_file\n" \
        "app = Flask(__name__)\n"

CASES = {
    "DYN101": (
        FLASK + "@app.route('/hi')\ndef hi():\n    name = request.args.get('name')\n"
                "    html = f'<h1>Hello {name}</h1>'\n    return html\n",
        FLASK + "from markupsafe import escape\n@app.route('/hi')\ndef hi():\n    name = escape(request.args.get('name'))\n"
                "    html = f'<h1>Hello {name}</h1>'\n    return html\n",
    ),
    "DYN102": (
        FLASK + "@app.route('/hi')\ndef hi():\n    name = request.form['name']\n"
                "    return render_template_string('<p>{}</p>'.format(name))\n",
        FLASK + "@app.route('/hi')\ndef hi():\n    name = request.form['name']\n"
                "    return render_template_string('<p>{{ name }}</p>', name=name)\n",
    ),
    "DYN103": (
        "from jinja2 import Template\nt = Template('<p>{{ x }}</p>', autoescape=False)\n",
        "from jinja2 import Template\nt = Template('<p>{{ x }}</p>', autoescape=True)\n",
    ),
    "DYN104": (
        "import jinja2\nt = jinja2.Template('<p>{{ x }}</p>')\n",
        "import jinja2\nt = jinja2.Template('<p>{{ x }}</p>', autoescape=True)\n",
    ),
    "DYN105": (
        FLASK + "@app.route('/echo')\ndef echo():\n    return request.args.get('text')\n",
        FLASK + "@app.route('/echo')\ndef echo():\n    return {'text': request.args.get('text')}\n",
    ),
    "DYN111": (
        FLASK + "import os\n@app.route('/file')\ndef file():\n    name = request.args['name']\n"
                "    return send_file(os.path.join('/srv/files', name))\n",
        FLASK + "import os\nfrom werkzeug.utils import secure_filename\n@app.route('/file')\ndef file():\n"
                "    name = secure_filename(request.args['name'])\n    return send_file(os.path.join('/srv/files', name))\n",
    ),
    "DYN112": (
        "import os\npath = os.path.join(UPLOADS, '../../etc', name)\n",
        "import os\nif '../' in name:\n    raise ValueError('no parent directories')\npath = os.path.join(UPLOADS, name)\n",
    ),
    "DYN121": (
        "import os\nMODE = 0o777\nos.chmod(path, MODE)\nfd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o666)\n",
        "import os\nMODE = 0o755\nos.chmod(path, MODE)\nfd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)\n",
    ),
    "DYN131": (
        "import tarfile\nwith tarfile.open(archive) as tar:\n    tar.extractall(path=dest, members=tar.getmembers())\n",
        "import tarfile\nwith tarfile.open(archive) as tar:\n    tar.extractall(path=dest, filter='data')\n",
    ),
    "DYN141": (
        "import cPickle as pickle\nobj = pickle.loads(blob)\n",
        "import json\nobj = json.loads(blob)\n",
    ),
    "DYN151": (
        "from lxml import etree\nparser = etree.XMLParser(resolve_entities=True)\ndoc = etree.fromstring(xml, parser)\n",
        "from lxml import etree\nparser = etree.XMLParser(resolve_entities=False, no_network=True)\n"
        "doc = etree.fromstring(xml, parser)\n",
    ),
    "DYN161": (
        "import requests\ndef fetch(url):\n    if 'example.com' in url:\n        return requests.get(url, timeout=5)\n",
        "import requests\nfrom urllib.parse import urlparse\ndef fetch(url):\n"
        "    if urlparse(url).hostname == 'example.com':\n        return requests.get(url, timeout=5)\n",
    ),
    "DYN162": (
        "import re\nALLOWED = re.compile(r'https://[a-z]+.example.com/')\n",
        "import re\nALLOWED = re.compile(r'https://[a-z]+\\.example\\.com/')\n",
    ),
    "DYN163": (
        "from urllib.parse import urlparse\nok = urlparse(link).netloc.endswith('example.com')\n",
        "from urllib.parse import urlparse\nok = urlparse(link).netloc.endswith('.example.com')\n",
    ),
    "DYN171": (
        "def add(cursor, name):\n    query = 'INSERT INTO users (name) VALUES '\n    query += f\"('{name}')\"\n"
        "    cursor.execute(query)\n",
        "def add(cursor, name):\n    query = 'INSERT INTO users (name) VALUES (?)'\n    cursor.execute(query, (name,))\n",
    ),
    "DYN181": (
        "def login(user, password):\n    if password == 'hunter2':\n        return True\n",
        "import hmac\ndef login(user, password):\n    return hmac.compare_digest(hash_of(password), user.hash)\n",
    ),
    "DYN182": (
        "from flask import Flask\napp = Flask(__name__)\napp.config['SECRET_KEY'] = '9f2a0c7d41e8b6'\n"
        "SMTP_PASSWORD = 'Dragon5368#'\n",
        "import os\nfrom flask import Flask\napp = Flask(__name__)\napp.config['SECRET_KEY'] = os.environ['SECRET_KEY']\n"
        "SMTP_PASSWORD = ''\n",
    ),
    "DYN183": (
        "import random, string\ndef make_reset_token():\n"
        "    return ''.join(random.choice(string.ascii_letters) for _ in range(32))\n",
        "import random, secrets\ndef make_reset_token():\n    return secrets.token_urlsafe(32)\n"
        "def shuffle_deck(deck):\n    return random.sample(deck, len(deck))\n",
    ),
    "DYN184": (
        "import requests, ssl\nsession = requests.Session()\nsession.verify = False\n"
        "ctx = ssl.create_default_context()\nctx.check_hostname = False\n",
        "import requests, ssl\nsession = requests.Session()\nsession.verify = '/etc/ssl/certs/ca.pem'\n"
        "ctx = ssl.create_default_context()\n",
    ),
    "DYN185": (
        "from flask import Flask\napp = Flask(__name__)\napp.config['DEBUG'] = True\n",
        "import os\nfrom flask import Flask\napp = Flask(__name__)\napp.config['DEBUG'] = False\n",
    ),
    "DYN113": (
        "import json\nclass Cache:\n    FILE = '/tmp/app_cache.json'\n    def save(self, d):\n"
        "        with open(self.FILE, 'w') as f:\n            json.dump(d, f)\n",
        "import json, tempfile\ndef save(d):\n    with tempfile.NamedTemporaryFile('w', delete=False) as f:\n"
        "        json.dump(d, f)\nwith open('/tmp/app_cache.json') as f:\n    cached = json.load(f)\n",
    ),
    "DYN172": (
        "import asyncio\nasync def lookup(domain):\n    return await asyncio.create_subprocess_shell(f'nslookup {domain}')\n",
        "import asyncio, shlex\nasync def lookup(domain):\n"
        "    return await asyncio.create_subprocess_shell(f'nslookup {shlex.quote(domain)}')\n",
    ),
    "DYN186": (
        "from sqlalchemy import create_engine\nengine = create_engine('postgresql://app:Xk29!qpLw7Zr@db.internal/app')\n",
        "import os\nfrom sqlalchemy import create_engine\nengine = create_engine(os.environ['DATABASE_URL'])\n"
        "local = create_engine('postgresql://postgres:postgres@localhost/dev')\n",
    ),
    "DYN187": (
        "import boto3\ns3 = boto3.client('s3', region_name='eu-west-1', aws_access_key_id='AKIAQ3EGVK2MPRW7ZT4N')\n",
        "import boto3\ns3 = boto3.client('s3', region_name='eu-west-1')\n",
    ),
    "DYN188": (
        "import requests\nr = requests.get('https://jira.example.com/api', auth=('svc-jira', 'N0tS0S3cret#2024'))\n",
        "import getpass, requests\nr = requests.get('https://jira.example.com/api', auth=('svc-jira', getpass.getpass()))\n",
    ),
    "DYN192": (
        FLASK + "import requests\n@app.route('/preview')\ndef preview():\n"
                "    return {'code': requests.get(request.args['url'], timeout=5).status_code}\n",
        FLASK + "import requests\n@app.route('/search')\ndef search():\n"
                "    r = requests.get(f\"https://api.example.com/search?q={request.args['q']}\", timeout=5)\n"
                "    return {'code': r.status_code}\n",
    ),
    "DYN191": (
        FLASK + "@app.route('/out')\ndef out():\n    return redirect(request.args['next'])\n",
        FLASK + "from urllib.parse import urlparse\n@app.route('/out')\ndef out():\n    target = request.args['next']\n"
                "    if urlparse(target).netloc not in ('', 'example.com'):\n        target = '/'\n"
                "    return redirect(target)\n",
    ),
}


@pytest.fixture(scope="module")
def rules():
    return RulesAnalyser()


def fired(analyser, code):
    findings, errors, ok = analyser.analyse(code, 0)
    assert ok and not errors
    return {f.rule_id for f in findings}


def test_every_rule_has_a_flagged_and_an_unflagged_example():
    assert set(CASES) == set(RULES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_flags_the_flaw(rules, rule_id):
    assert rule_id in fired(rules, CASES[rule_id][0])


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_passes_the_fix(rules, rule_id):
    assert rule_id not in fired(rules, CASES[rule_id][1])


def test_finding_traces_analyser_rule_and_line(rules):
    findings, _, _ = rules.analyse(CASES["DYN101"][0], 3)
    (f,) = [f for f in findings if f.rule_id == "DYN101"]
    assert (f.analyser, f.rule_name, f.flaw_class, f.block, f.line) == ("rules", "xss-response-from-input", "xss", 3, 7)  # the return line
    assert "request input" in f.text


@pytest.mark.parametrize("code", [
    # a value sanitised in one arm of an if stays tainted through the other arm
    FLASK + "from markupsafe import escape\n@app.route('/a')\ndef a():\n    n = request.args['n']\n"
            "    if len(n) > 3:\n        n = escape(n)\n    return '<b>' + n + '</b>'\n",
    # appended to a list, then joined into the page
    FLASK + "@app.route('/b')\ndef b():\n    rows = []\n    for i in range(3):\n        rows.append(request.args.get(f'r{i}'))\n"
            "    html = '<ul>'\n    for r in rows:\n        html += '<li>{}</li>'.format(r)\n    return html\n",
    # a string route parameter is input; flask.request spelled in full
    "import flask\napp = flask.Flask(__name__)\n@app.route('/docs/<name>')\ndef docs(name):\n"
    "    return f'<h1>{name}</h1><p>{flask.request.args.get(\"q\")}</p>'\n",
])
def test_taint_follows_input(rules, code):
    assert "DYN101" in fired(rules, code)


@pytest.mark.parametrize("code", [
    FLASK + "@app.route('/c/<int:item_id>')\ndef c(item_id):\n    return f'<p>{item_id}</p>'\n",  # an int converter
    FLASK + "@app.route('/d')\ndef d():\n    n = int(request.args['n'])\n    return f'<p>{n * 2}</p>'\n",  # converted
    FLASK + "LABELS = {'a': 'Apple'}\n@app.route('/e')\ndef e():\n    return f\"<p>{LABELS.get(request.args['k'])}</p>\"\n",
    FLASK + "from flask import jsonify\n@app.route('/f')\ndef f():\n    return jsonify(name=request.args['n'])\n",
    FLASK + "@app.route('/g')\ndef g():\n    return redirect(request.url)\n",  # back to this very page
])
def test_taint_stops_at_conversions_lookups_and_json(rules, code):
    assert not fired(rules, code) & {"DYN101", "DYN105", "DYN191"}


@pytest.mark.parametrize("code", [
    "SETTINGS = {'provider': 'stripe', 'api_key': 'q8Vn3LpZ2xR7wJ4m'}\n",  # a dict entry
    "import requests\ndef fetch(url, token='q8Vn3LpZ2xR7wJ4m'):\n    return requests.get(url, timeout=5)\n",  # a default
    "class Mailer:\n    PASSWORD = 'Tr0ub4dor&3-mailbox'\n",  # a class attribute
    "import pymysql\nc = pymysql.connect(host='10.0.3.7', user='etl', password='s3cr3tEtlPass!')\n",  # a keyword
    "HEADERS = {'X-Api-Key': 'a9f8e7d6c5b4a3928176e5d4c3b2a190'}\n",  # a header named for a key
    "JWT_SIGNING_KEY = 'b3f1c9a27e5d48c6a0f2e9d7c4b1a8e3'\n",  # 'key' alone: a random-looking literal
    "import stripe\nstripe.api_key = 'q8Vn3LpZ2xR7wJ4m'\n",  # an attribute
])
def test_hard_coded_secret_in_every_shape(rules, code):
    assert "DYN182" in fired(rules, code)


@pytest.mark.parametrize("code", [
    "DEFAULTS = {'api_key': '<your-api-key>', 'password': '', 'token': 'CHANGE_ME'}\n",  # placeholders
    "PASSWORD_FIELD = 'password'\nTOKEN_HEADER = 'X-Auth-Token'\n",  # names of fields, not secrets
    "EXPECTED_SHA256 = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'\n",  # a checksum
    "CACHE_KEY = 'user-profile'\nSORT_KEY = 'created_at'\n",  # 'key' with a word, not a random literal
    "import psycopg2\nc = psycopg2.connect(host='localhost', user='postgres', password='s3cr3tEtlPass!')\n",  # local
    "import psycopg2\nc = psycopg2.connect(host='db', user='postgres', password='postgres')\n",  # a known default
])
def test_no_secret_in_placeholders_names_checksums_and_local_defaults(rules, code):
    assert not fired(rules, code) & {"DYN182", "DYN186", "DYN187", "DYN188"}


@pytest.mark.parametrize("code, rule_id", [
    # a helper opens the path it is given; the handler passes request input
    (FLASK + "import os\ndef read_report(name):\n    with open(os.path.join('/srv', name)) as f:\n"
             "        return f.read()\n@app.route('/r')\ndef r():\n    return {'b': read_report(request.args['n'])}\n",
     "DYN111"),
    # a method of a class defined in the module
    (FLASK + "import os\nclass Store:\n    def delete(self, rel):\n        os.remove(os.path.join('/srv', rel))\n"
             "store = Store()\n@app.post('/d')\ndef d():\n    store.delete(request.form['p'])\n    return ''\n", "DYN111"),
    # the handler has the helper's name (found on the independent set's held-aside part; see docs/static-judge.md)
    (FLASK + "import os\nclass Store:\n    def delete(self, rel):\n        os.remove(os.path.join('/srv', rel))\n"
             "store = Store()\n@app.post('/d')\ndef delete():\n    store.delete(request.form['p'])\n    return ''\n",
     "DYN111"),
    # a helper that returns request input is a source (Django)
    ("from django.shortcuts import redirect\ndef _target(request):\n    return request.GET.get('next') or '/'\n"
     "def logout(request):\n    return redirect(_target(request))\n", "DYN191"),
    # FastAPI path and query parameters
    ("from fastapi import FastAPI\nfrom fastapi.responses import FileResponse, RedirectResponse\napp = FastAPI()\n"
     "@app.get('/files/{name}')\nasync def f(name: str):\n    return FileResponse('/srv/' + name)\n", "DYN111"),
    ("from fastapi import FastAPI\nfrom fastapi.responses import RedirectResponse\napp = FastAPI()\n"
     "@app.get('/go')\nasync def go(url: str):\n    return RedirectResponse(url)\n", "DYN191"),
    # Tornado arguments, aiohttp query and redirects raised as exceptions
    ("import tornado.web\nclass H(tornado.web.RequestHandler):\n    def get(self):\n"
     "        self.redirect(self.get_argument('continue'))\n", "DYN191"),
    ("from aiohttp import web\nasync def bounce(request):\n    raise web.HTTPFound(request.query['to'])\n", "DYN191"),
    # an aiohttp client session bound by `async with`
    ("import aiohttp\nasync def proxy(request):\n    async with aiohttp.ClientSession() as s:\n"
     "        async with s.get(request.query.get('u')) as r:\n            return await r.read()\n", "DYN192"),
    # zip slip: archive member names reach open()
    ("import os, zipfile\ndef unpack(a, dest):\n    with zipfile.ZipFile(a) as zf:\n        for m in zf.namelist():\n"
     "            with open(os.path.join(dest, m), 'wb') as out:\n                out.write(zf.read(m))\n", "DYN111"),
])
def test_taint_through_helpers_frameworks_and_archives(rules, code, rule_id):
    assert rule_id in fired(rules, code)


@pytest.mark.parametrize("code", [
    # the URL is checked against an allow-list (a helper or a set) before the redirect
    "import tornado.web\nSAFE_HOSTS = ('example.com',)\ndef is_safe(url):\n    return url in SAFE_HOSTS\n"
    "class H(tornado.web.RequestHandler):\n    def get(self):\n        url = self.get_argument('continue')\n"
    "        self.redirect(url if is_safe(url) else '/')\n",
    FLASK + "ALLOWED_REDIRECTS = {'/home', '/account'}\n@app.route('/out')\ndef out():\n    t = request.args['next']\n"
            "    return redirect(t if t in ALLOWED_REDIRECTS else '/')\n",
    # the helper checks where the path points
    FLASK + "import os\ndef read_report(name):\n    full = os.path.realpath(os.path.join('/srv', name))\n"
            "    if not full.startswith('/srv/'):\n        raise ValueError(name)\n    return open(full).read()\n"
            "@app.route('/r')\ndef r():\n    return {'b': read_report(request.args['n'])}\n",
    # FastAPI: an int parameter, and a resolved path checked with is_relative_to
    "from pathlib import Path\nfrom fastapi import FastAPI\nfrom fastapi.responses import FileResponse\napp = FastAPI()\n"
    "BASE = Path('/srv').resolve()\n@app.get('/files/{name}')\nasync def f(name: str, n: int):\n"
    "    target = (BASE / name).resolve()\n    if not target.is_relative_to(BASE):\n        raise ValueError(name)\n"
    "    return FileResponse(target)\n",
])
def test_checked_input_passes(rules, code):
    assert not fired(rules, code) & {"DYN111", "DYN191", "DYN192"}


@pytest.mark.parametrize("code", [
    "import dill\nobj = dill.loads(blob)\n",
    "import pandas as pd\ndf = pd.read_pickle(upload)\n",
    "import torch\nstate = torch.load(path, map_location='cpu')\n",
    "import numpy as np\na = np.load(path, allow_pickle=True)\n",
    "import yaml\ncfg = yaml.load(text, Loader=yaml.UnsafeLoader)\n",
])
def test_less_common_deserialisers(rules, code):
    assert "DYN141" in fired(rules, code)


def test_safe_loaders_pass(rules):
    code = ("import torch, yaml, numpy as np, pandas as pd\nstate = torch.load(path, weights_only=True)\n"
            "cfg = yaml.safe_load(text)\na = np.load(path)\ndf = pd.read_parquet(upload)\n")
    assert "DYN141" not in fired(rules, code)


def test_rule_severity_decides_whether_it_counts():
    code = CASES["DYN104"][0]  # DYN104 is LOW: listed, not counted at the default MEDIUM threshold
    default = StaticCodeJudge(analysers=("rules",)).analyse_one(code)
    assert default.insecure is False and [f.rule_id for f in default.findings] == ["DYN104"]
    assert StaticCodeJudge(severity="LOW", analysers=("rules",)).analyse_one(code).insecure is True
    assert StaticCodeJudge(severity="LOW", analysers=("rules",), skip=("DYN104",)).analyse_one(code).insecure is False


def test_odd_code_does_not_break_the_rules(rules):
    deep = "x = " + "(" * 90 + "1" + ")" * 90 + "\n"
    for code in (deep, "async def f():\n    async with a as b:\n        yield b\n", "match x:\n    case 1:\n        pass\n",
                 "class H(BaseHTTPRequestHandler):\n    def do_GET(self):\n        open(self.path[1:]).read()\n"):
        findings, errors, ok = rules.analyse(code, 0)
        assert ok and isinstance(findings, list)

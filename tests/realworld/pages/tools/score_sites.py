#!/usr/bin/env python3
"""Score the draft site files in ../sites against the truth in ../truth.

Runs `scrapefarm extract --site <marketplace> <file> --json` for every truth file whose marketplace
has a site file and compares the fields the record has today: title, price (minor units), currency,
url, external id, seller, condition, image count; for search pages the result count, the next page,
the number of results and each truth result (matched by URL or id): title, price digits, URL.
Usage: SCRAPEFARM_BIN=path/to/scrapefarm tools/score_sites.py [marketplace ...]
"""
import json,subprocess,sys,os,re
P=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))+'/'
BIN=os.environ.get('SCRAPEFARM_BIN','scrapefarm')
env=dict(os.environ,SCRAPEFARM_SITES_DIR=P+'sites')
SITE={'mercadolivre':'mercadolivre','mercadolibre':'mercadolibre'}
def norm(s): return re.sub(r'\s+',' ',s or '').strip()
def digits(s): return re.sub(r'\D','',s or '')
tot_ok=tot=0; per={}
only=sys.argv[1:] 
for fn in sorted(os.listdir(P+'truth')):
    mk=fn[:-5]
    if only and mk not in only: continue
    if not os.path.exists(P+'sites/'+mk+'.toml'): continue
    for t in json.load(open(P+'truth/'+fn)):
        r=subprocess.run([BIN,'extract','--site',mk,P+t['file'],'--json'],capture_output=True,text=True,env=env)
        try: d=json.loads(r.stdout)
        except Exception: print('FAIL',t['file'],r.stdout[:300],r.stderr[-600:]); continue
        checks=[]
        if t['kind']=='product':
            rec=d.get('record') or {}
            F=t['fields']
            def val(k): v=F.get(k); return v.get('value') if isinstance(v,dict) else v
            checks.append(('title',norm(rec.get('title'))==norm(val('title')),rec.get('title')))
            pr=F['price']
            if pr.get('amount_minor') is None: checks.append(('price(none)',rec.get('price_minor') is None,rec.get('price')))
            else:
                checks.append(('price',rec.get('price_minor')==pr['amount_minor'],rec.get('price_minor')))
                checks.append(('currency',rec.get('currency')==pr['currency'],rec.get('currency')))
            checks.append(('url',rec.get('url')==val('url'),rec.get('url')))
            checks.append(('external_id',rec.get('external_id')==val('external_id') or rec.get('item_id')==val('external_id'),rec.get('external_id')))
            if val('seller'): checks.append(('seller',rec.get('seller')==val('seller'),rec.get('seller')))
            if val('condition'): checks.append(('condition',rec.get('condition')==val('condition'),rec.get('condition')))
            if val('image_count'): checks.append(('images',len(rec.get('images') or [])==val('image_count'),len(rec.get('images') or [])))
        else:
            s=d.get('search') or {}
            hits=s.get('hits') or []
            checks.append(('result_count',s.get('result_count')==t['result_count'],s.get('result_count')))
            checks.append(('next_page',s.get('next_page')==t['next_page'],s.get('next_page')))
            checks.append(('n_results',len(hits)==len(t['results']),len(hits)))
            used=set()
            for i,tr in enumerate(t['results']):
                urls={tr['url'],tr.get('url_unwrapped'),tr.get('url_absolute')}
                h={}
                for j,hh in enumerate(hits):
                    if j in used: continue
                    if hh.get('url') in urls or (tr.get('id') and (tr['id']==hh.get('external_id') or tr['id'] in (hh.get('url') or ''))):
                        h=hh; used.add(j); break
                checks.append((f'r{i+1}.title',norm(h.get('title'))==norm(tr['title']),h.get('title')))
                checks.append((f'r{i+1}.price',digits(h.get('price_text'))==digits(tr['price']['text']) or h.get('price_minor')==tr['price']['amount_minor'],h.get('price_text')))
                checks.append((f'r{i+1}.url',h.get('url') in urls,h.get('url')))
        ok=sum(c[1] for c in checks); tot_ok+=ok; tot+=len(checks)
        per.setdefault(mk,[0,0]); per[mk][0]+=ok; per[mk][1]+=len(checks)
        bad=[c for c in checks if not c[1]]
        print(f"{t['file']}: {ok}/{len(checks)} class={d.get('class')}")
        for c in bad[:8]: print('   MISS',c[0],'got',repr(c[2])[:150])
        if len(bad)>8: print('   ...',len(bad)-8,'more')
print({k:f'{a}/{b}' for k,(a,b) in per.items()}, f'total {tot_ok}/{tot}')

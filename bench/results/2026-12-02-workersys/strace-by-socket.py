# Writes per occurrence by destination port and Redis command in an `strace -yy` log:
#   python3 strace-by-socket.py <file> <occurrences>   (zcat a .gz into a file first)
import re,collections,sys
f,n=sys.argv[1],int(sys.argv[2])
c=collections.Counter(); cmds=collections.Counter(); byt=collections.Counter()
for line in open(f):
    m=re.search(r'(write|writev|sendto|sendmsg)\((\d+)<(TCP:\[[\d.:]+->[\d.]+:(\d+)\]|[^>]*)>',line)
    if not m: continue
    kind,fd,peer,port=m.groups()
    port=port or peer[:20]
    c[(kind,port)]+=1
    r=re.search(r'= (\d+)\s*$',line)
    if r: byt[(kind,port)]+=int(r.group(1))
    cm=re.search(r'"\*\d+\\r\\n\$\d+\\r\\n(\w+)\\r\\n(?:\$40\\r\\n(\w{9}))?',line)
    if cm: cmds[(port,cm.group(1),cm.group(2))]+=1
for k,v in c.most_common(): print(k,v,'per occ %.2f'%(v/n),'bytes/call %d'%(byt[k]//v))
for k,v in cmds.most_common(): print(k,v,'per occ %.2f'%(v/n))

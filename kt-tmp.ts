import * as ort from 'onnxruntime-node';
import { trainingKernels, floatView, int64View } from './src/train/nlsm/onnx-kernels.ts';
const U=1935,K=64,L=5,Rw=20,D=256,E=25000;
const rnd=(n:number,s=0.1)=>Float32Array.from({length:n},()=>(Math.random()-0.5)*s);
const fw=await trainingKernels.gruForward(), bw=await trainingKernels.gruBackward();
const obj=await trainingKernels.objective({L,K,directed:true});
async function time(name:string, f:()=>Promise<unknown>, n=20){ await f(); const t=performance.now(); for(let i=0;i<n;i++) await f(); console.log(name, ((performance.now()-t)/n).toFixed(2),'ms'); }
for (const [M,H] of [[U,K],[Rw,D]]) {
  const feeds:any={x:floatView(rnd(M*H),[M,H]),centre:floatView(Float32Array.of(0),[]),scale:floatView(Float32Array.of(1),[])};
  for(const w of ['Uu','Ur','Un']) feeds[w]=floatView(rnd(H*H),[H,H]);
  for(const b of ['bu','br','bn','bhn']) feeds[b]=floatView(rnd(H),[H]);
  await time(`fwd ${M}x${H}`, ()=>fw.run(feeds));
  const o=await fw.run(feeds);
  const bf:any={dy:o.y,direct:o.y,h:o.h,u:o.u,r:o.r,q:o.q,n:o.n,Uu:feeds.Uu,Ur:feeds.Ur,Un:feeds.Un,scale:feeds.scale};
  await time(`bwd ${M}x${H}`, ()=>bw.run(bf));
}
const ints=(n:number,m:number)=>int64View(BigInt64Array.from({length:n},()=>BigInt(Math.floor(Math.random()*m))),[n]);
const of:any={psiMean:floatView(rnd(L*U*K),[L,U,K]),psiLogVar:floatView(rnd(L*U*K),[L,U,K]),psiNoise:floatView(rnd(L*U*K),[L,U,K]),
thetaMean:floatView(rnd(L*Rw*D),[L,Rw,D]),thetaLogVar:floatView(rnd(L*Rw*D),[L,Rw,D]),thetaNoise:floatView(rnd(L*Rw*D),[L,Rw,D]),
subjects:ints(E,L*U),objects:ints(E,L*U),relations:ints(E,L*Rw),linearWeight:floatView(rnd(E),[E]),softplusWeight:floatView(rnd(E),[E])};
for(const n of ['psiMeanCoef','psiVarCoef','thetaMeanCoef','thetaVarCoef']) of[n]=floatView(rnd(L),[L,1,1]);
of.psiWalk=floatView(Float32Array.of(100),[]); of.thetaWalk=floatView(Float32Array.of(100),[]);
await time('objective', ()=>obj.run(of));

import { trainingKernels, floatView, int64View } from './src/train/nlsm/onnx-kernels.ts';
const U=1935,K=64,L=5,Rw=20,D=256,E=25000;
const rnd=(n:number,s=0.1)=>Float32Array.from({length:n},()=>(Math.random()-0.5)*s);
const obj=await trainingKernels.objective({L,K,directed:true});
const ints=(n:number,m:number)=>int64View(BigInt64Array.from({length:n},()=>BigInt(Math.floor(Math.random()*m))),[n]);
const of:any={psiMean:floatView(rnd(L*U*K),[L,U,K]),psiLogVar:floatView(rnd(L*U*K),[L,U,K]),psiNoise:floatView(rnd(L*U*K),[L,U,K]),
thetaMean:floatView(rnd(L*Rw*D),[L,Rw,D]),thetaLogVar:floatView(rnd(L*Rw*D),[L,Rw,D]),thetaNoise:floatView(rnd(L*Rw*D),[L,Rw,D]),
subjects:ints(E,L*U),objects:ints(E,L*U),relations:ints(E,L*Rw),linearWeight:floatView(rnd(E),[E]),softplusWeight:floatView(rnd(E),[E])};
for(const n of ['psiMeanCoef','psiVarCoef','thetaMeanCoef','thetaVarCoef']) of[n]=floatView(rnd(L),[L,1,1]);
of.psiWalk=floatView(Float32Array.of(100),[]); of.thetaWalk=floatView(Float32Array.of(100),[]);
for (let i=0;i<20;i++) await obj.run(of);
const t=performance.now(); for (let i=0;i<20;i++) await obj.run(of); console.log('objective ms', ((performance.now()-t)/20).toFixed(1));
obj.endProfiling();
